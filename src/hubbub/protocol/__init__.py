"""The wire protocol: message types, codes, channel names and codecs. No I/O lives here."""
