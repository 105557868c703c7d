"""The benchmark's FLOP count and peak estimate, on values computed by hand."""

from benchmarks.bench import count_forward_flops, cpu_peak, matmul_rate, peak_share, shares
from digitrec.models.registry import build_model


def test_forward_flops_of_paper_case1_match_the_hand_count():
    conv = 2 * 9 * (26 * 26 * 64 * 1 + 11 * 11 * 64 * 64 + 3 * 3 * 64 * 64)  # output pixels x kernel MACs x 2
    dense = 2 * (64 * 64 + 64 * 32 + 32 * 10)
    assert count_forward_flops(build_model("paper-case1")) == conv + dense == 10_376_320


def test_peak_share_is_achieved_over_peak():
    peak = cpu_peak(threads=2)
    assert peak["peak_gflops"] > 0 and peak["flops_per_cycle_per_core"] in (8, 32, 64)
    assert peak_share(1000, 10**6, 10.0) == 0.1


def test_the_measured_matrix_product_rate_is_the_faster_library_and_each_figure_is_shown_against_both():
    matmul = matmul_rate(threads=1, repeats=1)
    assert matmul["sizes"] == [512, 1024, 2048]
    assert set(matmul["gflops"]) == {"torch", "onnxruntime"} and min(matmul["gflops"].values()) > 0
    assert matmul["best_gflops"] == max(matmul["gflops"].values()) == matmul["gflops"][matmul["best_library"]]
    report = {"peak": {"peak_gflops": 10.0}, "matmul": {"best_gflops": 5.0}}
    assert shares(1000, 10**6, report) == "10.0% | 20.0%"
    assert shares(1000, 10**6, {"peak": {"peak_gflops": 10.0}}) == "10.0% | -"


def test_the_speedrun_ablation_table_is_the_mean_over_seeds_and_reads_a_one_seed_file():
    from benchmarks.speedrun_ablation import table_markdown

    def run(accuracy: float) -> dict:
        return {"validation_accuracy": [0.9, accuracy], "seconds": 10.0, "process_cpu_seconds": 12.0, "load_average": 1}

    seeded = {
        "preset": {"runs": {"0": run(0.992), "1": run(0.994)}},
        "wider": {"runs": {"0": run(0.995), "1": run(0.995)}},
    }
    rows = table_markdown("speedrun-long", seeded, "cmd", 2, [0, 1]).splitlines()[-2:]
    assert rows[0].startswith("| preset | 99.30 | 99.20, 99.40 | +0.00 |")
    assert rows[1].startswith("| wider | 99.50 | 99.50, 99.50 | +0.20 |")
    one_seed = {"preset": run(0.99)}  # a file of the one-seed form: the run itself, seed 0
    assert "| preset | 99.00 | 99.00 | +0.00 |" in table_markdown("speedrun", one_seed, "cmd", 1, [0])
