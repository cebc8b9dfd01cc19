"""Benchmark: what strictness and encryption at rest cost, against raw baselines.

Run with ``make bench`` (or ``pytest -s tests/bench/test_bench_identity.py``). Prints
medians of several runs, each measured in the same run as its baseline:

- strict ``PublicKey.verify`` (canonical/small-order/S checks + OpenSSL) against a bare
  ``cryptography`` verify of the same signatures;
- parsing a did:key into a checked ``PublicKey`` (base58, point checks, on-curve test)
  for keys met for the first time and for keys met again (the on-curve test is cached);
- opening a key file at the default scrypt cost (the passphrase's price at hub start),
  against the test cost of 2**10;
- where the signature workers start to pay, and signature checks on threads of this
  process (libsodium releases the GIL) against one thread, and beside a busy thread.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from craftnet.identity import batch, keys
from craftnet.identity.keys import PrivateKey, parse_did
from craftnet.identity.keystore import DEFAULT_SCRYPT_N, Keystore

N_SIGNATURES = 2_000


def _medians(*fns: Callable[[], object], runs: int = 7) -> list[float]:
    """Median time of each function, runs interleaved so load spikes hit all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def test_strict_verification_against_bare_openssl() -> None:
    signer = PrivateKey.from_seed(bytes(range(32)))
    messages = [f"technique {i}: wheel-thrown, salt-glazed".encode() for i in range(N_SIGNATURES)]
    signatures = [signer.sign(m) for m in messages]
    strict = signer.public
    bare = Ed25519PublicKey.from_public_bytes(strict.raw)

    def run_strict() -> None:
        for m, s in zip(messages, signatures, strict=True):
            strict.verify(s, m)

    def run_bare() -> None:
        for m, s in zip(messages, signatures, strict=True):
            bare.verify(s, m)

    t_strict, t_bare = _medians(run_strict, run_bare)
    print(
        f"\nverify x{N_SIGNATURES}: strict {t_strict * 1e6 / N_SIGNATURES:.1f} us/sig, "
        f"bare OpenSSL {t_bare * 1e6 / N_SIGNATURES:.1f} us/sig, "
        f"ratio {t_strict / t_bare:.2f}"
    )


def test_parsing_did_keys_first_time_and_again() -> None:
    dids = [PrivateKey.from_seed(i.to_bytes(32, "little")).did for i in range(1, 501)]

    def parse_all() -> None:
        for did in dids:
            parse_did(did)

    def parse_fresh() -> None:
        keys._on_curve.cache_clear()
        parse_all()

    def bare() -> None:
        for did in dids:
            Ed25519PublicKey.from_public_bytes(keys.did_to_raw(did))

    parse_all()  # warm the cache
    t_fresh, t_cached, t_bare = _medians(parse_fresh, parse_all, bare)
    n = len(dids)
    print(
        f"\nparse_did x{n}: first time {t_fresh * 1e6 / n:.1f} us, again "
        f"{t_cached * 1e6 / n:.1f} us, decode + bare import {t_bare * 1e6 / n:.1f} us; "
        f"ratios {t_fresh / t_bare:.2f} and {t_cached / t_bare:.2f}"
    )


def test_opening_a_key_file_default_cost_against_test_cost(tmp_path: Path) -> None:
    default = Keystore(tmp_path / "default")
    cheap = Keystore(tmp_path / "cheap", scrypt_n=2**10)
    default.create("hub", "passphrase")
    cheap.create("hub", "passphrase")
    t_default, t_cheap = _medians(
        lambda: default.load("hub", "passphrase"), lambda: cheap.load("hub", "passphrase")
    )
    print(
        f"\nkeystore load: scrypt n=2**{DEFAULT_SCRYPT_N.bit_length() - 1} "
        f"{t_default * 1e3:.1f} ms, n=2**10 {t_cheap * 1e3:.2f} ms, "
        f"ratio {t_default / t_cheap:.0f}"
    )


def test_signature_pool_crossover() -> None:
    """Where checking a batch in worker processes starts to beat checking it here.

    The pool is started (and warmed) first and its start-up time printed apart: a hub
    pays it once, at its first big import. Sizes are interleaved, medians of 7 runs.
    """
    signer = PrivateKey.from_seed(bytes(range(1, 33)))
    messages = [b"technique %d: " % i + b"kiln log " * 120 for i in range(8192)]
    items = [(signer.public, signer.sign(m), m) for m in messages]
    batch.shutdown()
    began = time.perf_counter()
    assert batch.verify_many(items[:8], pool=True) == [None] * 8
    startup = time.perf_counter() - began
    print(f"\nsignature pool: {batch.workers()} workers on {batch.cores()} cores, "
          f"started in {startup * 1e3:.0f} ms (once per process)")
    crossover = None  # the smallest size from which on the pool always won
    for n in (16, 32, 64, 128, 256, 512, 1024, 8192):
        part = items[:n]
        t_here, t_pool = _medians(
            lambda part=part: batch.verify_many(part, pool=False),
            lambda part=part: batch.verify_many(part, pool=True),
        )
        if t_pool >= t_here:
            crossover = None
        elif crossover is None:
            crossover = n
        print(f"  {n:5d} signatures: here {t_here * 1e6 / n:5.1f} us/sig, "
              f"pool {t_pool * 1e6 / n:5.1f} us/sig, speed-up {t_here / t_pool:4.2f}")
    print(f"  crossover: {crossover} signatures (POOL_MIN = {batch.POOL_MIN}), "
          f"load {os.getloadavg()[0]:.1f}")
    batch.shutdown()


def test_signature_checks_on_threads() -> None:
    """Whether signature checks could run on threads of this process (an idea measured
    and not taken; docs/identity.md "Checking many signatures").

    libsodium's check (PyNaCl's cffi binding) runs with the GIL released, so two threads
    checking at once finish sooner than one when a core is idle. But each check takes the
    GIL back to return, and while another thread runs Python without pause (parsing an
    import, handling a sync's frames) that waits for the interpreter's switch interval
    (5 ms): the third row is a thread checking while this one runs Python.
    """
    signer = PrivateKey.from_seed(bytes(range(2, 34)))
    messages = [b"technique %d: " % i + b"kiln log " * 120 for i in range(N_SIGNATURES)]
    signatures = [signer.sign(m) for m in messages]
    public = signer.public

    def check(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            public.verify(signatures[i], messages[i])

    def on_threads(count: int) -> None:
        step = -(-N_SIGNATURES // count)
        threads = [
            threading.Thread(target=check, args=(lo, min(N_SIGNATURES, lo + step)))
            for lo in range(0, N_SIGNATURES, step)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    t_one, t_two = _medians(lambda: on_threads(1), lambda: on_threads(2))
    busy: list[float] = []
    for _ in range(3):
        done = threading.Event()
        took: list[float] = []

        def beside(done: threading.Event = done, took: list[float] = took) -> None:
            start = time.perf_counter()
            check(0, N_SIGNATURES // 4)
            took.append(time.perf_counter() - start)
            done.set()

        thread = threading.Thread(target=beside)
        thread.start()
        spins = 0
        while not done.is_set():
            spins += sum(range(100))  # Python work that never waits
        thread.join()
        busy.append(took[0] / (N_SIGNATURES // 4))
    print(
        f"\nsignatures on threads (x{N_SIGNATURES}): one thread "
        f"{t_one * 1e6 / N_SIGNATURES:.1f} us/sig, two threads "
        f"{t_two * 1e6 / N_SIGNATURES:.1f} us/sig (speed-up {t_one / t_two:.2f}); "
        f"a thread checking while another runs Python "
        f"{statistics.median(busy) * 1e6:.1f} us/sig; load {os.getloadavg()[0]:.1f}"
    )
