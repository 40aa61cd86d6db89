"""The command-line front: `poracle-bot check | restart | config | run | doctor | trust | healthcheck`."""
