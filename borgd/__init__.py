"""borgd: schedules and runs BorgBackup jobs, publishes their state over D-Bus."""

__version__ = "0.1.0"
