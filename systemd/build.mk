# systemd/: unit files (installed, not built). Nothing to compile yet.
