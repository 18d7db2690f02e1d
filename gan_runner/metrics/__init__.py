"""How good the fakes are: univariate.py (1-D samples against the target normal), image.py
(FD, KID, precision/recall, MNIST score, coverage on classifier outputs; pure numpy/scipy) and
classifier.py (the digit classifier whose logits image.py scores)."""
