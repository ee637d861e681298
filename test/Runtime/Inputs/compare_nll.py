"""compare_nll.py BASE OTHER LO HI: the mean NLL of kiln-perplexity output
OTHER minus that of BASE must lie in [LO, HI]; prints the difference."""
import re
import sys


def nll(path):
    m = re.search(r"mean NLL ([0-9.]+)", open(path).read())
    if not m:
        sys.exit("no mean NLL in " + path)
    return float(m.group(1))


base, other = nll(sys.argv[1]), nll(sys.argv[2])
lo, hi = float(sys.argv[3]), float(sys.argv[4])
delta = other - base
print("delta %.4f" % delta)
if not lo <= delta <= hi:
    sys.exit("NLL delta %.4f outside [%s, %s]" % (delta, lo, hi))
