"""The miner contract's workspace glue: read the log window, run the miners, write and register candidates."""
