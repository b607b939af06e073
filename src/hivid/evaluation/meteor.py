"""METEOR 1.5 through one persistent ``java -jar meteor-1.5.jar - - -stdio -l en -norm`` process.

The protocol is the one pycocoevalcap uses: ``SCORE ||| ref1 ||| ... ||| hyp`` returns the
segment's statistics; ``EVAL ||| stats1 ||| stats2 ...`` returns one segment score per statistics
line and then the aggregate score of all of them (METEOR sums the statistics, it does not average
segment scores). Differences from the reference wrapper, none of which changes a number:

- statistics are cached per distinct (hypothesis, references), so every pair is scored once per
  evaluation, however many videos / tIoU thresholds / SODA matrices reuse it;
- requests are pipelined (a writer thread feeds stdin while we read stdout), not one round trip
  per line;
- non-ASCII tokens (segmented Chinese) are mapped one-to-one onto ASCII placeholders before they
  reach the jar, so the JVM's platform charset cannot garble them; exact matching is unchanged and
  placeholders have no stems, synonyms or paraphrases (so Chinese gets exact matches only).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, Any

from hivid.evaluation.java import METEOR_JAR, find_java, jar, sha256

Pair = tuple[str, tuple[str, ...]]
"""(hypothesis, references), both already tokenized."""


class Meteor:
    """One METEOR 1.5 JVM for a whole evaluation; use as a context manager (or call close())."""

    def __init__(self, memory: str = "2G") -> None:
        self.jar = jar(METEOR_JAR)
        cmd = [find_java(), "-jar", f"-Xmx{memory}", str(self.jar), "-", "-", "-stdio"]
        cmd += ["-l", "en", "-norm"]
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._p = subprocess.Popen(
            cmd,
            cwd=str(self.jar.parent),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._stats: dict[Pair, str] = {}
        self._ascii: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pending: threading.Thread | None = None
        self._pending_error: BaseException | None = None

    # -- identity -------------------------------------------------------------------------------
    def identity(self) -> dict[str, str]:
        return {"meteor_jar": "meteor-1.5.jar", "meteor_jar_sha256": sha256(self.jar)}

    # -- process plumbing -----------------------------------------------------------------------
    def _talk(self, lines: Sequence[str], n_out: int) -> list[str]:
        """Send ``lines``; read ``n_out`` answer lines (a writer thread avoids pipe deadlock)."""
        assert self._p.stdin is not None and self._p.stdout is not None
        stdin, stdout = self._p.stdin, self._p.stdout
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for i in range(0, len(lines), 512):
                    stdin.write(("\n".join(lines[i : i + 512]) + "\n").encode("ascii"))
                stdin.flush()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        with self._lock:
            t = threading.Thread(target=write, daemon=True)
            t.start()
            out = []
            for _ in range(n_out):
                line = stdout.readline()
                if not line:
                    break
                out.append(line.decode().strip())
            t.join()
        if errors or len(out) < n_out:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(
                "METEOR 1.5 process failed"
                + (f": {tail[-1]}" if tail else (f": {errors[0]}" if errors else ""))
            )
        return out

    def _asciify(self, text: str) -> str:
        if text.isascii():
            return text
        toks = []
        for tok in text.split(" "):
            if tok.isascii():
                toks.append(tok)
            else:
                toks.append(self._ascii.setdefault(tok, f"zxq{len(self._ascii):06d}"))
        return " ".join(toks)

    def _line(self, pair: Pair) -> str:
        hyp, refs = pair
        # exactly the reference's SCORE line: only the hypothesis is cleaned of '|||' and '  '
        hyp = self._asciify(hyp).replace("|||", "").replace("  ", " ")
        return " ||| ".join(("SCORE", " ||| ".join(self._asciify(r) for r in refs), hyp))

    # -- scoring --------------------------------------------------------------------------------
    def _prepare_now(self, pairs: Sequence[Pair]) -> None:
        todo = [p for p in dict.fromkeys(pairs) if p not in self._stats]
        if todo:
            answers = self._talk([self._line(p) for p in todo], len(todo))
            self._stats.update(zip(todo, answers, strict=True))

    def prepare(self, pairs: Sequence[Pair]) -> None:
        """Compute (and cache) the statistics of every new pair in one pipelined batch."""
        self.wait()
        self._prepare_now(pairs)

    def prepare_async(self, pairs: Sequence[Pair]) -> None:
        """Start :meth:`prepare` in a thread: the JVM aligns while Python scores other metrics."""
        self.wait()
        todo = list(pairs)

        def run() -> None:
            try:
                self._prepare_now(todo)
            except BaseException as exc:  # re-raised by wait()
                self._pending_error = exc

        self._pending = threading.Thread(target=run, daemon=True)
        self._pending.start()

    def wait(self) -> None:
        """Join a running :meth:`prepare_async` (re-raising its error)."""
        if self._pending is not None:
            self._pending.join()
            self._pending = None
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc

    def evaluate(self, groups: Sequence[Sequence[Pair]]) -> list[tuple[float, list[float]]]:
        """(aggregate score, segment scores) of each group of pairs, as ``Meteor.compute_score``."""
        self.prepare([p for g in groups for p in g])
        lines, sizes = [], []
        for g in groups:
            if not g:
                raise ValueError("METEOR needs at least one pair per group")
            lines.append("EVAL ||| " + " ||| ".join(self._stats[p] for p in g))
            sizes.append(len(g))
        answers = self._talk(lines, sum(sizes) + len(sizes))
        out, k = [], 0
        for n in sizes:
            seg = [float(x) for x in answers[k : k + n]]
            out.append((float(answers[k + n]), seg))
            k += n + 1
        return out

    def segment_scores(self, pairs: Sequence[Pair]) -> list[float]:
        """Segment score of each pair (one EVAL over all of them)."""
        if not pairs:
            return []
        return self.evaluate([list(pairs)])[0][1]

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        if self._pending is not None:
            self._pending.join()
        if self._p.poll() is None:
            try:
                if self._p.stdin:
                    self._p.stdin.close()
                self._p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._p.kill()
                self._p.wait()
        self._stderr.close()

    def __enter__(self) -> Meteor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
