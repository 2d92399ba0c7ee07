# make check-layers: the module graph of shim/ has no include cycle and its
# layers point one way (scripts/check_layers.py; the Check suite "layers"
# runs the same inside make check).
.PHONY: check-layers
check-layers:
	$(PYTHON) scripts/check_layers.py --self-test
	$(PYTHON) scripts/check_layers.py shim
