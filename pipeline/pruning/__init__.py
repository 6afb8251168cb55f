"""The pruning engine: masks, discovery, criteria, schedules (torch only) and the Lightning callback."""
