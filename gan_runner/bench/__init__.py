"""`make bench` / `python -m gan_runner.bench`: one module per section (gaussian1d, sweep, dcgan,
quality), each importing what they share from common.py and never each other."""
