"""The actors test: cacherr's engine at work while the mover, a tagger, an *arr upgrade,
an unmounting pool and hostile file names act at the worst moments a seed picks."""
