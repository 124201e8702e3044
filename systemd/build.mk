# systemd/: the production units, installed by hand (docs/systemd.md), not built:
#   cn2-{edge,payments,router,vault,ledger,platform}.service  one hardened unit per daemon
#   cn2.target            the six as one thing to start, stop and enable
#   cn2-sysusers.conf     a user per daemon, all in the group cn2 (for sysusers.d)
#   cn2-tmpfiles.conf     /run/cn2, the IPC socket directory, 3770 root:cn2 (for tmpfiles.d)
#   etc/cn2/*.conf        each daemon's /etc/cn2 configuration to match its unit
# tests/scenario/test_units.c scores the units and holds them to their promises.
