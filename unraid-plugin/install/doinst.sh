# doinst.sh: run by installpkg/upgradepkg from the root of the install, as `sh install/doinst.sh`.
# Relative paths only (Slackware convention), so a package installed with --root works too.
chmod 0755 usr/local/sbin/cacherr etc/rc.d/rc.cacherr
chmod 0755 usr/local/emhttp/plugins/cacherr/event/* usr/local/emhttp/plugins/cacherr/scripts/*
