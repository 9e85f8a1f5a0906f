"""dotsctl command groups."""
