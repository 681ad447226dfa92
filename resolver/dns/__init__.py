"""The DNS server: answers from the catalog snapshot over UDP and TCP."""
