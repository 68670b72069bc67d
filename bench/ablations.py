"""The paper's ablations (Tab. 5, Fig. 5, Tab. 6) on the demo city: the sweep, its wall time, its tables.

    python bench/ablations.py [--catalog catalogs/demo] [--preset all] [--seeds 0 1]
                              [--max-settings K] [--device auto] [--num-workers 2] [--docs]

Runs ``runs/sweep.py CATALOG --preset all --seeds 0 1`` (a subprocess: the real commands; the
catalog is built the demo's way when missing), then prints the wall time of every setting and seed
trained or evaluated in this run (``RUN_DIR/timings.json``), the total, and per preset of the paper
(``runs/sweep.py``'s ``PAPER``) its table against its own baseline (Tab. 5 and Fig. 5 against
``cosplace``, Tab. 6 against ``groups4``) with, per row and eval set, whether the paper's direction
holds: ``holds`` when the R@1 difference's 95% interval lies below 0, ``reversed`` when above,
``not resolved`` when it contains 0. Written to ``RUN_DIR/ablations.md`` and ``RUN_DIR/ablations.html``
(tables and R@1 plots with interval bars); ``--docs`` also writes the plot to ``docs/ablations_r1.png``.
Finished settings are reused, so a second run only prints the tables. In full: 8 settings x 2 seeds
of the demo's schedule.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runs import sweep  # noqa: E402
from vgtrain import sweep_table  # noqa: E402


def paper_tables(run_dir: Path, seeds: list[int], eval_sets: tuple[str, ...]) -> tuple[str, str, list[dict]]:
    """Per preset of ``sweep.PAPER`` whose settings all ran: (Markdown, HTML, rows with verdicts).

    A row's ``verdict`` is :func:`vgtrain.sweep_table.direction` of its R@1 difference against the
    preset's baseline (every claim of the paper says the setting is below it).
    """
    md, sections, verdicts = [], [], []
    for preset, (baseline, claims) in sweep.PAPER.items():
        names = [baseline, *claims]
        if not all((run_dir / n / f"seed{k}" / "eval").is_dir() for n in names for k in seeds):
            md.append(f"{preset}: not every setting has run yet ({', '.join(names)})\n")
            continue
        rows = sweep_table.build_table(run_dir, names, seeds, eval_sets, baseline)
        base = {r["eval_set"]: r for r in rows if r["setting"] == baseline}
        md.append(f"#### {preset} (baseline {baseline})\n")
        md.append("| setting | paper | eval set | R@1 | R@1 - baseline | R@5 - baseline | direction |")
        md.append("|---|---|---|---|---|---|---|")
        for r in rows:
            if r["setting"] == baseline:
                continue
            verdict = sweep_table.direction(r["d1_lo"], r["d1_hi"], expected=-1)
            verdicts.append({**r, "preset": preset, "claim": claims[r["setting"]], "verdict": verdict})
            cells = [
                r["setting"],
                claims[r["setting"]],
                r["eval_set"],
                f"{r['r1']:.1f} vs {base[r['eval_set']]['r1']:.1f}",
                f"{r['d1']:+.1f} [{r['d1_lo']:+.1f}, {r['d1_hi']:+.1f}]",
                f"{r['d5']:+.1f} [{r['d5_lo']:+.1f}, {r['d5_hi']:+.1f}]",
                verdict,
            ]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
        sections.append((f"{preset} (baseline {baseline})", rows))
    md.append(
        f"R@N in %, mean over seeds {', '.join(map(str, seeds))}; differences in points with 95% paired bootstrap "
        "intervals over queries; direction: holds (interval below 0), reversed (above 0), not resolved (contains 0)."
    )
    return "\n".join(md) + "\n", sweep_table.pages(sections, title="the paper's ablations"), verdicts


def seed_noise(run_dir: Path, settings: list[str], seeds: list[int], eval_sets: tuple[str, ...]) -> str:
    """Markdown: per setting and eval set, R@1 of seed a - seed b (paired over queries), the noise floor.

    Two runs of one setting differ only in their seed, so this difference is what training noise
    alone does to R@1; a setting difference smaller than it cannot be told apart with these seeds.
    """
    if len(seeds) < 2:
        return "(one seed: no seed-to-seed difference)\n"
    a, b = seeds[:2]
    lines = [
        f"| setting | eval set | R@1 seed {a} | R@1 seed {b} | seed {a} - seed {b} [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name in settings:
        for q in eval_sets:
            (ia, ha), (ib, hb) = (sweep_table.read_eval(sweep_table.eval_folder(run_dir, name, k, q)) for k in (a, b))
            d = sweep_table.paired_seed_difference(ha[None, :, 0], hb[None, :, 0])
            lo, hi = d["interval"]
            lines.append(
                f"| {name} | {q} | {ia['values'][1]:.1f} | {ib['values'][1]:.1f} | "
                f"{d['difference']:+.1f} [{lo:+.1f}, {hi:+.1f}] |"
            )
    return "\n".join(lines) + "\n"


def epoch_losses(run_dir: Path, settings: list[str], seed: int) -> str:
    """Markdown: the mean training loss of every epoch (``last.meta.json`` history) and the group it trained."""
    rows = {}
    for name in settings:
        meta = json.loads((run_dir / name / f"seed{seed}" / "last.meta.json").read_text())
        rows[name] = [(h["group"], h["loss"]) for h in meta["history"]]
    epochs = max(len(r) for r in rows.values())
    lines = ["| setting | " + " | ".join(f"epoch {e}" for e in range(epochs)) + " |", "|---" * (epochs + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"g{g}: {loss:.1f}" for g, loss in r) + " |")
    return "\n".join(lines) + "\n"


def heading_of_hits(run_dir: Path, catalog: Path, settings: list[str], seeds: list[int], eval_set: str) -> str:
    """Markdown: top-1 retrievals of ``eval_set`` split by the heading difference to the query (degrees).

    Per setting, the share of queries (%, mean over seeds) whose first retrieval is a positive
    facing within 45 degrees of the query, a positive facing more than 90 degrees away, and a
    wrong image facing within 45 degrees; and the first share minus ``cosplace``'s, paired over
    queries with its 95% bootstrap interval. Headings from the eval manifest (a query without one is
    counted in none of the shares).
    """
    import pyarrow.parquet as pq

    m = pq.read_table(catalog / "manifests" / f"eval_{eval_set}.parquet", columns=["role", "idx", "heading"])
    heading = {
        role: np.array([h if h is not None else np.nan for h in m.filter(pc.equal(m["role"], role))
                        .sort_by("idx")["heading"].to_pylist()], dtype=np.float64)
        for role in ("database", "query")
    }  # fmt: skip
    n = len(heading["query"])
    kinds: dict[str, np.ndarray] = {}  # setting -> bool (seeds, kinds, queries)
    for name in settings:
        per_seed = []
        for k in seeds:
            p = pq.read_table(sweep_table.eval_folder(run_dir, name, k, eval_set) / "predictions.parquet")
            top = p.filter(pc.equal(p["rank"], 0))
            q, d = top["query_idx"].to_numpy(), top["database_idx"].to_numpy()
            found = np.zeros((4, n), dtype=bool)
            pos = top["is_positive"].to_numpy(zero_copy_only=False)
            turn = np.abs((heading["database"][d] - heading["query"][q] + 180.0) % 360.0 - 180.0)
            found[:, q] = [pos, pos & (turn <= 45), pos & (turn > 90), ~pos & (turn <= 45)]
            per_seed.append(found)
        kinds[name] = np.stack(per_seed)
    lines = [f"| setting | R@1 | positive, same way (<= 45 deg) | same way - {sweep.BASELINE} [95% CI] | "
             "positive, facing away (> 90 deg) | wrong, same way (<= 45 deg) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in kinds.items():
        r = 100.0 * f.mean(axis=(0, 2))
        diff = "-"
        if sweep.BASELINE in kinds:
            d = sweep_table.paired_seed_difference(f[:, 1], kinds[sweep.BASELINE][:, 1])
            diff = f"{d['difference']:+.1f} [{d['interval'][0]:+.1f}, {d['interval'][1]:+.1f}]"
        lines.append(f"| {name} | {r[0]:.1f} | {r[1]:.1f} | {diff} | {r[2]:.1f} | {r[3]:.1f} |")
    return "\n".join(lines) + "\n"


def explain(run_dir: Path, catalog: Path, seeds: list[int], eval_sets: tuple[str, ...]) -> str:
    """The analyses of the README's reading of the table: seed noise, losses per epoch, headings of hits."""
    names = [n for n in sweep.PRESETS["all"] if all((run_dir / n / f"seed{k}" / "eval").is_dir() for k in seeds)]
    return "\n".join(
        [
            "#### seed to seed (the noise floor)\n",
            seed_noise(run_dir, names, seeds, eval_sets),
            f"#### mean training loss per epoch (seed {seeds[0]}; gN: the group trained)\n",
            epoch_losses(run_dir, names, seeds[0]),
            "#### top-1 retrievals of queries_v2 by heading difference (% of queries, mean over seeds)\n",
            heading_of_hits(run_dir, catalog, names, seeds, "queries_v2"),
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=ROOT / "catalogs" / "demo")
    ap.add_argument("--preset", default="all", help="tab5, fig5, tab6 or all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, help="run folder (default: CATALOG-ablations)")
    ap.add_argument("--max-settings", type=int, help="only the first K settings (a trial run)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--docs", action="store_true", help="also write the R@1 plot to docs/ablations_r1.png")
    args = ap.parse_args()
    out = args.out or args.catalog.parent / f"{args.catalog.name}-ablations"
    argv = [sys.executable, str(ROOT / "runs" / "sweep.py"), str(args.catalog), "--preset", args.preset,
            "--seeds", *map(str, args.seeds), "--out", str(out), "--device", args.device,
            "--num-workers", str(args.num_workers)]  # fmt: skip
    if args.max_settings is not None:
        argv += ["--max-settings", str(args.max_settings)]
    print("$ " + " ".join(argv), flush=True)
    start = time.perf_counter()
    done = subprocess.run(argv)
    total = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"bench/ablations.py: runs/sweep.py failed (exit {done.returncode}); see its error above")
    timings = json.loads((out / "timings.json").read_text())
    print("\nwall time per setting and seed (this run):")
    for key, t in timings.items():
        print(f"  {key:24s} {t['seconds']:8.1f} s  {t['state']}")
    ran = sum(t["seconds"] for t in timings.values())
    print(f"  {'settings, in all':24s} {ran:8.1f} s")
    print(f"  {'total (with the catalog)':24s} {total:8.1f} s ({total / 60:.1f} min)")
    md, page, verdicts = paper_tables(out, args.seeds, sweep.demo.EVAL_SETS)
    md += "\n" + explain(out, args.catalog, args.seeds, sweep.demo.EVAL_SETS)
    (out / "ablations.md").write_text(md)
    (out / "ablations.html").write_text(page)
    print("\n" + md, end="")
    if args.docs and verdicts:
        rows = sweep_table.build_table(out, list(sweep.PRESETS["all"]), args.seeds, sweep.demo.EVAL_SETS, None)
        (ROOT / "docs" / "ablations_r1.png").write_bytes(sweep_table.plot_png(rows))
    print(f"tables: {out / 'ablations.md'}, {out / 'ablations.html'} (plots); all settings: {out / 'sweep.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
