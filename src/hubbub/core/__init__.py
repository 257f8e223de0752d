"""The rules of the hub: sessions, channels, recovery, presence, auth and limits. No sockets."""
