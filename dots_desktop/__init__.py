"""The desktop apps of DOTS Family Mode: ``dots-family`` for parents
(parent_app) and the child's window and tray icon (child_window, tray).
GTK 4 and libadwaita through Debian's gi; view logic in model.py."""
