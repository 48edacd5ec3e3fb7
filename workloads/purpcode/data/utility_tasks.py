"""Small coding tasks with reference solutions and tests (oracle `correctness`), written by this project.

Why ship them: rule learning and RL mix utility tasks into every batch so safety training does not cost coding
ability; a run must have some even without network access to the released sets. Tests are functional
`check(candidate)` functions (the sandbox harness's `functional` TestSpec); synthesis validates every reference
solution in the sandbox before a task is kept. Parametric families multiply the fixed tasks into distinct variants.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UtilityTask:
    id: str
    prompt: str
    entry_point: str
    solution: str
    test: str


def _t(id: str, prompt: str, entry_point: str, solution: str, test: str) -> UtilityTask:
    return UtilityTask(id, prompt.strip(), entry_point, solution.strip() + "\n", test.strip() + "\n")


TASKS: tuple[UtilityTask, ...] = (
    _t(
        "reverse-words",
        "Write a function `reverse_words(s: str) -> str` that reverses the order of the words in "
        "`s` (words are separated by whitespace) and joins them with single spaces.",
        "reverse_words",
        "def reverse_words(s):\n    return ' '.join(reversed(s.split()))",
        "def check(candidate):\n    assert candidate('hello world') == 'world hello'\n"
        "    assert candidate('  a  b c ') == 'c b a'\n    assert candidate('') == ''",
    ),
    _t(
        "is-palindrome",
        "Write `is_palindrome(s: str) -> bool` that ignores case and non-alphanumeric characters.",
        "is_palindrome",
        "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]",
        "def check(candidate):\n    assert candidate('A man, a plan, a canal: Panama') is True\n"
        "    assert candidate('race a car') is False\n    assert candidate('') is True",
    ),
    _t(
        "fizzbuzz",
        "Write `fizzbuzz(n: int) -> list[str]` returning the FizzBuzz strings for 1..n.",
        "fizzbuzz",
        "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n        s = ('Fizz' if i % 3 == 0 else '') + "
        "('Buzz' if i % 5 == 0 else '')\n        out.append(s or str(i))\n    return out",
        "def check(candidate):\n    assert candidate(5) == ['1', '2', 'Fizz', '4', 'Buzz']\n"
        "    assert candidate(15)[-1] == 'FizzBuzz'\n    assert candidate(0) == []",
    ),
    _t(
        "two-sum",
        "Write `two_sum(nums: list[int], target: int) -> tuple[int, int]` returning indices i < j with "
        "nums[i] + nums[j] == target (exactly one answer exists).",
        "two_sum",
        "def two_sum(nums, target):\n    seen = {}\n    for j, x in enumerate(nums):\n        if target - x in seen:\n"
        "            return (seen[target - x], j)\n        seen[x] = j\n    raise ValueError('no pair')",
        "def check(candidate):\n    assert tuple(candidate([2, 7, 11, 15], 9)) == (0, 1)\n"
        "    assert tuple(candidate([3, 2, 4], 6)) == (1, 2)\n    assert tuple(candidate([3, 3], 6)) == (0, 1)",
    ),
    _t(
        "flatten",
        "Write `flatten(xs: list) -> list` that flattens arbitrarily nested lists.",
        "flatten",
        "def flatten(xs):\n    out = []\n    for x in xs:\n        if isinstance(x, list):\n            out.extend(flatten(x))\n"
        "        else:\n            out.append(x)\n    return out",
        "def check(candidate):\n    assert candidate([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]\n"
        "    assert candidate([]) == []\n    assert candidate([[[]]]) == []",
    ),
    _t(
        "word-count",
        "Write `word_count(text: str) -> dict[str, int]` counting lower-cased words made of letters.",
        "word_count",
        "import re\n\ndef word_count(text):\n    counts = {}\n    for w in re.findall(r'[a-z]+', text.lower()):\n"
        "        counts[w] = counts.get(w, 0) + 1\n    return counts",
        "def check(candidate):\n    assert candidate('The cat and the hat.') == {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}\n"
        "    assert candidate('') == {}",
    ),
    _t(
        "merge-intervals",
        "Write `merge_intervals(iv: list[tuple[int, int]]) -> list[tuple[int, int]]` merging "
        "overlapping closed intervals, sorted by start.",
        "merge_intervals",
        "def merge_intervals(iv):\n    out = []\n    for a, b in sorted(iv):\n        if out and a <= out[-1][1]:\n"
        "            out[-1] = (out[-1][0], max(out[-1][1], b))\n        else:\n            out.append((a, b))\n    return out",
        "def check(candidate):\n    assert [tuple(x) for x in candidate([(1, 3), (2, 6), (8, 10)])] == [(1, 6), (8, 10)]\n"
        "    assert [tuple(x) for x in candidate([(1, 4), (4, 5)])] == [(1, 5)]\n    assert list(candidate([])) == []",
    ),
    _t(
        "roman",
        "Write `to_roman(n: int) -> str` converting 1 <= n <= 3999 to Roman numerals.",
        "to_roman",
        "def to_roman(n):\n    vals = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),\n"
        "            (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]\n    out = ''\n"
        "    for v, s in vals:\n        while n >= v:\n            out += s\n            n -= v\n    return out",
        "def check(candidate):\n    assert candidate(1994) == 'MCMXCIV'\n    assert candidate(4) == 'IV'\n"
        "    assert candidate(3999) == 'MMMCMXCIX'",
    ),
    _t(
        "balanced",
        "Write `balanced(s: str) -> bool` checking that (), [] and {} are balanced in `s`.",
        "balanced",
        "def balanced(s):\n    pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n    for c in s:\n"
        "        if c in '([{':\n            stack.append(c)\n        elif c in pairs:\n"
        "            if not stack or stack.pop() != pairs[c]:\n                return False\n    return not stack",
        "def check(candidate):\n    assert candidate('([]{})') is True\n    assert candidate('([)]') is False\n"
        "    assert candidate('((') is False\n    assert candidate('') is True",
    ),
    _t(
        "anagrams",
        "Write `group_anagrams(words: list[str]) -> list[list[str]]` grouping anagrams; each group keeps "
        "input order and groups are ordered by their first word's position.",
        "group_anagrams",
        "def group_anagrams(words):\n    groups = {}\n    for w in words:\n"
        "        groups.setdefault(''.join(sorted(w)), []).append(w)\n    return list(groups.values())",
        "def check(candidate):\n    assert candidate(['eat', 'tea', 'tan', 'ate', 'nat', 'bat']) == "
        "[['eat', 'tea', 'ate'], ['tan', 'nat'], ['bat']]\n    assert candidate([]) == []",
    ),
    _t(
        "primes",
        "Write `primes_below(n: int) -> list[int]` returning all primes < n.",
        "primes_below",
        "def primes_below(n):\n    if n < 3:\n        return []\n    sieve = [True] * n\n    sieve[0] = sieve[1] = False\n"
        "    for i in range(2, int(n ** 0.5) + 1):\n        if sieve[i]:\n            sieve[i * i::i] = [False] * len(sieve[i * i::i])\n"
        "    return [i for i, p in enumerate(sieve) if p]",
        "def check(candidate):\n    assert candidate(20) == [2, 3, 5, 7, 11, 13, 17, 19]\n    assert candidate(2) == []\n"
        "    assert len(candidate(1000)) == 168",
    ),
    _t(
        "run-length",
        "Write `rle(s: str) -> str` run-length encoding, e.g. 'aaab' -> 'a3b1'.",
        "rle",
        "def rle(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n        while j < len(s) and s[j] == s[i]:\n"
        "            j += 1\n        out.append(f'{s[i]}{j - i}')\n        i = j\n    return ''.join(out)",
        "def check(candidate):\n    assert candidate('aaab') == 'a3b1'\n    assert candidate('') == ''\n"
        "    assert candidate('abc') == 'a1b1c1'",
    ),
    _t(
        "matrix-transpose",
        "Write `transpose(m: list[list[int]]) -> list[list[int]]`.",
        "transpose",
        "def transpose(m):\n    return [list(r) for r in zip(*m)]",
        "def check(candidate):\n    assert candidate([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]\n"
        "    assert candidate([]) == []",
    ),
    _t(
        "binary-search",
        "Write `bsearch(xs: list[int], x: int) -> int` returning the index of `x` in sorted `xs` or -1.",
        "bsearch",
        "def bsearch(xs, x):\n    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
        "        if xs[mid] == x:\n            return mid\n        if xs[mid] < x:\n            lo = mid + 1\n"
        "        else:\n            hi = mid - 1\n    return -1",
        "def check(candidate):\n    assert candidate([1, 3, 5, 7], 5) == 2\n    assert candidate([1, 3, 5, 7], 4) == -1\n"
        "    assert candidate([], 1) == -1",
    ),
    _t(
        "camel-to-snake",
        "Write `snake(name: str) -> str` converting CamelCase to snake_case.",
        "snake",
        "import re\n\ndef snake(name):\n    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()",
        "def check(candidate):\n    assert candidate('CamelCase') == 'camel_case'\n    assert candidate('HTTPServer') == "
        "'h_t_t_p_server'\n    assert candidate('x') == 'x'",
    ),
    _t(
        "chunk",
        "Write `chunk(xs: list, size: int) -> list[list]` splitting `xs` into lists of `size` (last may be "
        "shorter).",
        "chunk",
        "def chunk(xs, size):\n    return [xs[i:i + size] for i in range(0, len(xs), size)]",
        "def check(candidate):\n    assert candidate([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]\n"
        "    assert candidate([], 3) == []",
    ),
    _t(
        "gcd-list",
        "Write `gcd_all(xs: list[int]) -> int` returning the gcd of all numbers (0 for an empty list).",
        "gcd_all",
        "import math\n\ndef gcd_all(xs):\n    g = 0\n    for x in xs:\n        g = math.gcd(g, x)\n    return g",
        "def check(candidate):\n    assert candidate([12, 18, 24]) == 6\n    assert candidate([]) == 0\n"
        "    assert candidate([7]) == 7",
    ),
    _t(
        "median",
        "Write `median(xs: list[float]) -> float` (the mean of the two middle values for even length).",
        "median",
        "def median(xs):\n    s = sorted(xs)\n    n = len(s)\n    if n == 0:\n        raise ValueError('empty')\n"
        "    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2",
        "def check(candidate):\n    assert candidate([3, 1, 2]) == 2\n    assert candidate([4, 1, 3, 2]) == 2.5",
    ),
    _t(
        "dedupe",
        "Write `dedupe(xs: list) -> list` removing duplicates while keeping the first occurrence order.",
        "dedupe",
        "def dedupe(xs):\n    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
        "            seen.add(x)\n            out.append(x)\n    return out",
        "def check(candidate):\n    assert candidate([3, 1, 3, 2, 1]) == [3, 1, 2]\n    assert candidate([]) == []",
    ),
    _t(
        "caesar",
        "Write `caesar(s: str, k: int) -> str` shifting letters by k (keep case, leave other characters).",
        "caesar",
        "def caesar(s, k):\n    out = []\n    for c in s:\n        if c.isalpha() and c.isascii():\n"
        "            base = ord('A') if c.isupper() else ord('a')\n            out.append(chr((ord(c) - base + k) % 26 + base))\n"
        "        else:\n            out.append(c)\n    return ''.join(out)",
        "def check(candidate):\n    assert candidate('abc XYZ!', 3) == 'def ABC!'\n    assert candidate('abc', -1) == 'zab'",
    ),
    _t(
        "longest-common-prefix",
        "Write `lcp(words: list[str]) -> str` returning the longest common prefix.",
        "lcp",
        "def lcp(words):\n    if not words:\n        return ''\n    p = words[0]\n    for w in words[1:]:\n"
        "        while not w.startswith(p):\n            p = p[:-1]\n    return p",
        "def check(candidate):\n    assert candidate(['flower', 'flow', 'flight']) == 'fl'\n"
        "    assert candidate(['dog', 'car']) == ''\n    assert candidate([]) == ''",
    ),
    _t(
        "max-subarray",
        "Write `max_subarray(xs: list[int]) -> int` returning the largest sum of a non-empty "
        "contiguous subarray.",
        "max_subarray",
        "def max_subarray(xs):\n    best = cur = xs[0]\n    for x in xs[1:]:\n        cur = max(x, cur + x)\n"
        "        best = max(best, cur)\n    return best",
        "def check(candidate):\n    assert candidate([-2, 1, -3, 4, -1, 2, 1, -5, 4]) == 6\n    assert candidate([-3, -1]) == -1",
    ),
    _t(
        "digits-sum",
        "Write `digit_root(n: int) -> int` repeatedly summing the digits of n >= 0 until one digit remains.",
        "digit_root",
        "def digit_root(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n    return n",
        "def check(candidate):\n    assert candidate(493193) == 2\n    assert candidate(0) == 0\n    assert candidate(9) == 9",
    ),
    _t(
        "parse-kv",
        "Write `parse_kv(s: str) -> dict[str, str]` parsing 'a=1;b=2' (ignore empty parts, strip spaces).",
        "parse_kv",
        "def parse_kv(s):\n    out = {}\n    for part in s.split(';'):\n        if '=' in part:\n"
        "            k, v = part.split('=', 1)\n            out[k.strip()] = v.strip()\n    return out",
        "def check(candidate):\n    assert candidate('a=1; b = 2;;') == {'a': '1', 'b': '2'}\n    assert candidate('') == {}",
    ),
    _t(
        "rotate-matrix",
        "Write `rotate(m: list[list[int]]) -> list[list[int]]` rotating a square matrix 90 degrees "
        "clockwise.",
        "rotate",
        "def rotate(m):\n    return [list(r) for r in zip(*m[::-1])]",
        "def check(candidate):\n    assert candidate([[1, 2], [3, 4]]) == [[3, 1], [4, 2]]\n    assert candidate([[1]]) == [[1]]",
    ),
    _t(
        "fib",
        "Write `fib(n: int) -> int` returning the n-th Fibonacci number (fib(0) = 0, fib(1) = 1) in linear "
        "time.",
        "fib",
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        "def check(candidate):\n    assert candidate(0) == 0\n    assert candidate(10) == 55\n"
        "    assert candidate(90) == 2880067194370816120",
    ),
    _t(
        "count-vowels",
        "Write `count_vowels(s: str) -> int` counting a, e, i, o, u in any case.",
        "count_vowels",
        "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')",
        "def check(candidate):\n    assert candidate('Hello World') == 3\n    assert candidate('xyz') == 0",
    ),
    _t(
        "title-case",
        "Write `title(s: str) -> str` capitalising the first letter of every word and lower-casing the "
        "rest; words are separated by single spaces.",
        "title",
        "def title(s):\n    return ' '.join(w[:1].upper() + w[1:].lower() for w in s.split(' '))",
        "def check(candidate):\n    assert candidate('hELLO wORLD') == 'Hello World'\n    assert candidate('') == ''",
    ),
    _t(
        "second-largest",
        "Write `second_largest(xs: list[int]) -> int | None` returning the second largest distinct "
        "value, or None.",
        "second_largest",
        "def second_largest(xs):\n    s = sorted(set(xs))\n    return s[-2] if len(s) >= 2 else None",
        "def check(candidate):\n    assert candidate([3, 1, 4, 4]) == 3\n    assert candidate([5]) is None\n"
        "    assert candidate([]) is None",
    ),
    _t(
        "valid-ipv4",
        "Write `valid_ipv4(s: str) -> bool` (four decimal parts 0-255, no leading zeros).",
        "valid_ipv4",
        "def valid_ipv4(s):\n    parts = s.split('.')\n    if len(parts) != 4:\n        return False\n    for p in parts:\n"
        "        if not p.isdigit() or (len(p) > 1 and p[0] == '0') or int(p) > 255:\n            return False\n    return True",
        "def check(candidate):\n    assert candidate('192.168.0.1') is True\n    assert candidate('256.1.1.1') is False\n"
        "    assert candidate('01.1.1.1') is False\n    assert candidate('1.1.1') is False",
    ),
    _t(
        "histogram",
        "Write `histogram(xs: list[int], width: int) -> dict[int, int]` counting values in buckets "
        "[k*width, (k+1)*width), keyed by the bucket start.",
        "histogram",
        "def histogram(xs, width):\n    out = {}\n    for x in xs:\n        k = (x // width) * width\n"
        "        out[k] = out.get(k, 0) + 1\n    return out",
        "def check(candidate):\n    assert candidate([1, 2, 11, 25], 10) == {0: 2, 10: 1, 20: 1}\n    assert candidate([], 5) == {}",
    ),
    _t(
        "interleave",
        "Write `interleave(a: list, b: list) -> list` alternating items of a and b, then the rest of "
        "the longer one.",
        "interleave",
        "def interleave(a, b):\n    out = []\n    for i in range(max(len(a), len(b))):\n        if i < len(a):\n"
        "            out.append(a[i])\n        if i < len(b):\n            out.append(b[i])\n    return out",
        "def check(candidate):\n    assert candidate([1, 2, 3], ['a']) == [1, 'a', 2, 3]\n    assert candidate([], []) == []",
    ),
    _t(
        "spiral",
        "Write `spiral(m: list[list[int]]) -> list[int]` returning the elements in clockwise spiral order.",
        "spiral",
        "def spiral(m):\n    out = []\n    m = [list(r) for r in m]\n    while m:\n        out.extend(m.pop(0))\n"
        "        m = [list(r) for r in zip(*m)][::-1]\n    return out",
        "def check(candidate):\n    assert candidate([[1, 2, 3], [4, 5, 6], [7, 8, 9]]) == [1, 2, 3, 6, 9, 8, 7, 4, 5]\n"
        "    assert candidate([]) == []",
    ),
    _t(
        "lru-cache",
        "Write a class `LRU(capacity)` with `get(key)` (returns -1 when missing) and `put(key, value)` "
        "evicting the least recently used key. The entry point is a function `make(capacity)` returning an LRU.",
        "make",
        "from collections import OrderedDict\n\nclass LRU:\n    def __init__(self, capacity):\n        self.cap = capacity\n"
        "        self.d = OrderedDict()\n\n    def get(self, key):\n        if key not in self.d:\n            return -1\n"
        "        self.d.move_to_end(key)\n        return self.d[key]\n\n    def put(self, key, value):\n        self.d[key] = value\n"
        "        self.d.move_to_end(key)\n        if len(self.d) > self.cap:\n            self.d.popitem(last=False)\n\n"
        "def make(capacity):\n    return LRU(capacity)",
        "def check(candidate):\n    c = candidate(2)\n    c.put(1, 1)\n    c.put(2, 2)\n    assert c.get(1) == 1\n"
        "    c.put(3, 3)\n    assert c.get(2) == -1\n    assert c.get(3) == 3",
    ),
    _t(
        "topo-sort",
        "Write `topo(n: int, edges: list[tuple[int, int]]) -> list[int]` returning a topological order "
        "of nodes 0..n-1 (edge (a, b) means a before b), choosing the smallest available node first.",
        "topo",
        "import heapq\n\ndef topo(n, edges):\n    indeg = [0] * n\n    adj = [[] for _ in range(n)]\n    for a, b in edges:\n"
        "        adj[a].append(b)\n        indeg[b] += 1\n    heap = [i for i in range(n) if indeg[i] == 0]\n"
        "    heapq.heapify(heap)\n    out = []\n    while heap:\n        u = heapq.heappop(heap)\n        out.append(u)\n"
        "        for v in adj[u]:\n            indeg[v] -= 1\n            if indeg[v] == 0:\n                heapq.heappush(heap, v)\n"
        "    return out",
        "def check(candidate):\n    assert candidate(4, [(0, 1), (0, 2), (1, 3), (2, 3)]) == [0, 1, 2, 3]\n"
        "    assert candidate(3, [(2, 0)]) == [1, 2, 0]",
    ),
    _t(
        "edit-distance",
        "Write `edit_distance(a: str, b: str) -> int` (Levenshtein).",
        "edit_distance",
        "def edit_distance(a, b):\n    prev = list(range(len(b) + 1))\n    for i, ca in enumerate(a, 1):\n        cur = [i]\n"
        "        for j, cb in enumerate(b, 1):\n            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))\n"
        "        prev = cur\n    return prev[-1]",
        "def check(candidate):\n    assert candidate('kitten', 'sitting') == 3\n    assert candidate('', 'abc') == 3\n"
        "    assert candidate('same', 'same') == 0",
    ),
    _t(
        "bit-count",
        "Write `bits(n: int) -> int` counting the 1 bits of a non-negative integer.",
        "bits",
        "def bits(n):\n    return bin(n).count('1')",
        "def check(candidate):\n    assert candidate(0) == 0\n    assert candidate(255) == 8\n    assert candidate(1 << 40) == 1",
    ),
    _t(
        "safe-divide",
        "Write `safe_div(a: float, b: float, default: float = 0.0) -> float` returning a / b, or "
        "`default` when b is zero.",
        "safe_div",
        "def safe_div(a, b, default=0.0):\n    return default if b == 0 else a / b",
        "def check(candidate):\n    assert candidate(6, 3) == 2\n    assert candidate(1, 0) == 0.0\n    assert candidate(1, 0, -1) == -1",
    ),
    _t(
        "sliding-max",
        "Write `sliding_max(xs: list[int], k: int) -> list[int]` returning the max of every window of "
        "size k.",
        "sliding_max",
        "from collections import deque\n\ndef sliding_max(xs, k):\n    dq = deque()\n    out = []\n    for i, x in enumerate(xs):\n"
        "        while dq and xs[dq[-1]] <= x:\n            dq.pop()\n        dq.append(i)\n        if dq[0] <= i - k:\n"
        "            dq.popleft()\n        if i >= k - 1:\n            out.append(xs[dq[0]])\n    return out",
        "def check(candidate):\n    assert candidate([1, 3, -1, -3, 5, 3, 6, 7], 3) == [3, 3, 5, 5, 6, 7]\n"
        "    assert candidate([4], 1) == [4]",
    ),
)


@dataclass(frozen=True)
class TaskFamily:
    """A parametric task: one template, many distinct tasks (each parameter gives its own tests)."""

    id: str
    params: tuple[int, ...]
    prompt: str
    entry_point: str
    solution: str
    test: str

    def instantiate(self, k: int) -> UtilityTask:
        return UtilityTask(
            f"{self.id}-{k}",
            self.prompt.format(k=k),
            self.entry_point,
            self.solution.format(k=k).strip() + "\n",
            self.test.format(k=k).strip() + "\n",
        )


FAMILIES: tuple[TaskFamily, ...] = (
    TaskFamily(
        "power-sum",
        tuple(range(1, 13)),
        "Write `power_sum(xs: list[int]) -> int` returning the sum of x**{k} over the list.",
        "power_sum",
        "def power_sum(xs):\n    return sum(x ** {k} for x in xs)",
        "def check(candidate):\n    assert candidate([]) == 0\n    assert candidate([2]) == 2 ** {k}\n"
        "    assert candidate([1, 2, 3]) == 1 + 2 ** {k} + 3 ** {k}",
    ),
    TaskFamily(
        "rotate-left",
        tuple(range(1, 13)),
        "Write `rotate_left(xs: list) -> list` rotating the list left by {k} positions (wrapping around).",
        "rotate_left",
        "def rotate_left(xs):\n    if not xs:\n        return []\n    k = {k} % len(xs)\n    return xs[k:] + xs[:k]",
        "def check(candidate):\n    xs = list(range(20))\n    assert candidate(xs) == xs[{k} % 20:] + xs[:{k} % 20]\n"
        "    assert candidate([]) == []\n    assert candidate([7]) == [7]",
    ),
    TaskFamily(
        "nth-multiple",
        tuple(range(2, 14)),
        "Write `multiples(n: int) -> list[int]` returning the first n positive multiples of {k}.",
        "multiples",
        "def multiples(n):\n    return [{k} * i for i in range(1, n + 1)]",
        "def check(candidate):\n    assert candidate(0) == []\n    assert candidate(3) == [{k}, 2 * {k}, 3 * {k}]",
    ),
    TaskFamily(
        "base-convert",
        tuple(range(2, 11)),
        "Write `to_base(n: int) -> str` writing the non-negative integer n in base {k} (digits 0-9).",
        "to_base",
        "def to_base(n):\n    if n == 0:\n        return '0'\n    out = ''\n    while n:\n"
        "        out = str(n % {k}) + out\n        n //= {k}\n    return out",
        "def check(candidate):\n    assert candidate(0) == '0'\n    assert int(candidate(12345), {k}) == 12345\n"
        "    assert candidate({k}) == '10'",
    ),
    TaskFamily(
        "every-kth",
        tuple(range(2, 14)),
        "Write `every_kth(xs: list) -> list` returning every {k}-th element of xs, starting with the first.",
        "every_kth",
        "def every_kth(xs):\n    return xs[::{k}]",
        "def check(candidate):\n    xs = list(range(50))\n    assert candidate(xs) == xs[::{k}]\n    assert candidate([]) == []",
    ),
    TaskFamily(
        "pad-left",
        tuple(range(2, 14)),
        "Write `pad(s: str) -> str` left-padding s with '0' to at least {k} characters.",
        "pad",
        "def pad(s):\n    return s.rjust({k}, '0')",
        "def check(candidate):\n    assert candidate('7') == '7'.rjust({k}, '0')\n    assert len(candidate('')) == {k}\n"
        "    assert candidate('x' * 20) == 'x' * 20",
    ),
)


def all_tasks() -> list[UtilityTask]:
    """The fixed tasks first, then every family instance (stable order)."""
    out = list(TASKS)
    for fam in FAMILIES:
        out.extend(fam.instantiate(k) for k in fam.params)
    return out
