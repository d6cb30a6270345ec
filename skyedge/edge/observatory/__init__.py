"""What observatory control acts on and reads: sky state, safety, ASCOM Alpaca, Home Assistant."""
