"""The workers' heap is kept near what they hold (issue 12's memory figure).

`server._steady_malloc` runs in the master before it forks the workers: glibc then gives
a worker's threads at most two arenas, and maps every buffer over 256 KiB apart so that
freeing it gives it back. Checked in a child process that allocates from 8 threads at
once, as a worker's request threads do, counting the arenas and the buffers mapped
apart that glibc reports (malloc_info), against the same child without the setting.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, json, os, re, sys, threading
from infoshare import server

if sys.argv[1] == "steady":
    server._steady_malloc()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fdopen.restype = ctypes.c_void_p
libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]


def info():
    read, write = os.pipe()
    stream = libc.fdopen(write, b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    text = os.read(read, 1 << 20).decode()
    os.close(read)
    return text


start, held, done = threading.Barrier(9), threading.Barrier(9), threading.Barrier(9)


def work():
    start.wait()
    libc.free(libc.malloc(300 * 1024))  # one page's buffer freed: glibc adapts to it
    blocks = [libc.malloc(300 * 1024) for _ in range(5)]  # the next page's
    held.wait()
    done.wait()
    for block in blocks:
        libc.free(block)


threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
start.wait()
held.wait()
during = info()
done.wait()
for t in threads: t.join()
mapped = re.search(r'<total type="mmap" count="(\d+)"', during.rsplit("<heap", 1)[-1])
print(json.dumps({"arenas": len(re.findall(r'<heap nr="', during)),
                  "mapped_apart": int(mapped.group(1))}))
"""


def _child(mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True,
                            text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_a_workers_threads_share_two_arenas_and_large_buffers_are_mapped_apart():
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    default, steady = _child("default"), _child("steady")
    assert default["arenas"] > 2, default  # the default, for comparison: one per thread
    assert steady["arenas"] <= 2, steady
    # 8 threads x 5 buffers of 300 KiB held at once, after one of that size was freed:
    # by default glibc then takes them from its arenas (whose peak it keeps)
    assert default["mapped_apart"] < 40, default
    assert steady["mapped_apart"] >= 40, steady
