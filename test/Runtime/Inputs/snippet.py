"""Small numeric helpers: a text for kiln-perplexity's tests."""

import math
from functools import lru_cache


@lru_cache(maxsize=None)
def fib(n):
    """Return the n-th Fibonacci number (fib(0) == 0, fib(1) == 1)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def is_prime(n):
    """Return True if n is a prime number."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    limit = int(math.isqrt(n))
    for divisor in range(3, limit + 1, 2):
        if n % divisor == 0:
            return False
    return True


def primes_below(limit):
    """Return the list of primes smaller than limit (sieve of Eratosthenes)."""
    if limit < 3:
        return []
    sieve = [True] * limit
    sieve[0] = sieve[1] = False
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            for j in range(i * i, limit, i):
                sieve[j] = False
    return [i for i, flag in enumerate(sieve) if flag]


def gcd(a, b):
    """Return the greatest common divisor of a and b."""
    while b:
        a, b = b, a % b
    return abs(a)


def lcm(a, b):
    """Return the least common multiple of a and b."""
    if a == 0 or b == 0:
        return 0
    return abs(a * b) // gcd(a, b)


class Matrix:
    """A tiny dense matrix with addition and multiplication."""

    def __init__(self, rows):
        self.rows = [list(row) for row in rows]
        if any(len(row) != len(self.rows[0]) for row in self.rows):
            raise ValueError("rows must have the same length")

    @property
    def shape(self):
        return len(self.rows), len(self.rows[0]) if self.rows else 0

    def __add__(self, other):
        if self.shape != other.shape:
            raise ValueError("shapes differ")
        return Matrix(
            [a + b for a, b in zip(row, other_row)]
            for row, other_row in zip(self.rows, other.rows)
        )

    def __matmul__(self, other):
        n, k = self.shape
        k2, m = other.shape
        if k != k2:
            raise ValueError("inner dimensions differ")
        result = [[0] * m for _ in range(n)]
        for i in range(n):
            for j in range(m):
                total = 0
                for p in range(k):
                    total += self.rows[i][p] * other.rows[p][j]
                result[i][j] = total
        return Matrix(result)

    def transpose(self):
        return Matrix(zip(*self.rows))

    def __repr__(self):
        return f"Matrix({self.rows!r})"


def mean(values):
    """Return the arithmetic mean of a non-empty sequence."""
    values = list(values)
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def variance(values):
    """Return the population variance of a non-empty sequence."""
    values = list(values)
    mu = mean(values)
    return sum((x - mu) ** 2 for x in values) / len(values)


if __name__ == "__main__":
    print([fib(i) for i in range(10)])
    print(primes_below(50))
    print(gcd(84, 36), lcm(4, 6))
    m = Matrix([[1, 2], [3, 4]])
    print(m @ m.transpose())
    print(mean([1, 2, 3, 4]), variance([1, 2, 3, 4]))
