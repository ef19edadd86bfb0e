"""Prints the density figures of an analysed capture, as ../shared/real-heaps.md
gives them for real boards: allocations per snapshot, heap used, free runs,
fragmentation, near-MemoryError snapshots, and (with --per-snapshot tables)
allocation sizes and the type mix. Used to check the simulator's busy heaps
against real captures (README, "Synthetic captures").

    python3 tools/figures/heap_figures.py OUT [LABEL]
"""
import sys

import duckdb

out = sys.argv[1]
label = sys.argv[2] if len(sys.argv) > 2 else out
con = duckdb.connect()
s = con.sql(f"""
    select count(*), avg(allocation_count), median(allocation_count), max(allocation_count),
           avg(used_bytes / total_bytes), max(used_bytes / total_bytes), avg(free_run_count),
           avg(fragmentation), count(*) filter (where gc_max_free_blocks < 8), any_value(pool_bytes)
    from '{out}/snapshots/*.parquet' where status = 'ok'""").fetchall()[0]
print(f"| {label} | {s[9]:,} B pool | {s[0]:,} | {s[1]:,.0f} / {s[2]:,.0f} / {s[3]:,} "
      f"| {100 * s[4]:.0f} % / {100 * s[5]:.0f} % | {s[6]:.0f} | {s[7]:.2f} | {s[8]} |")
try:
    blocks = f"'{out}/blocks/*.parquet'"
    sizes = con.sql(f"""
        select case when blocks = 1 then '1' when blocks = 2 then '2' when blocks <= 4 then '3-4'
                    when blocks <= 8 then '5-8' when blocks <= 32 then '9-32' else '>32' end b,
               round(100.0 * count(*) / sum(count(*)) over (), 1)
        from {blocks} group by 1 order by min(blocks)""").fetchall()
    print("sizes (blocks: % of allocations):", ", ".join(f"{b}: {p} %" for b, p in sizes))
    kinds = con.sql(f"""
        select kind, round(100.0 * count(*) / sum(count(*)) over (), 1) p
        from {blocks} group by 1 order by p desc limit 12""").fetchall()
    print("kinds (% of allocations):", ", ".join(f"{k} {p} %" for k, p in kinds))
except duckdb.IOException:
    pass
