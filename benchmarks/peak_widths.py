"""Peak widths the network is trained on against those of measured patterns: the FWHM of each pattern's strongest
peak (degrees 2theta on the model's grid), for synthetic patterns with the sample broadening of an augmentation
(crystallite size, microstrain, resolution jitter; no background or noise, which would blur the measure) and for a
measured evaluation set as `predict` prepares it.

    python benchmarks/peak_widths.py                                   # xray-cuka: realistic vs RRUFF, ~1 min on CPU
    python benchmarks/peak_widths.py --augment-range crystallite_size=1000:10000 microstrain=0:5e-4

Training on peaks much broader than the user's hides the splittings that tell monoclinic from orthorhombic; the
--augment-range ranges that bring the two distributions together are the ones to train with (`powdersym train
--augment-range ...`). The strongest peak of a Cu K-alpha pattern includes the K-alpha2 line where it is not resolved.
"""

from __future__ import annotations

import argparse

import numpy as np

from powdersym.augment import AugmentConfig
from powdersym.augment.config import parse_ranges
from powdersym.data.generate import SyntheticSettings, make_generator, render, synthetic_crystals
from powdersym.simulate import preset


def strongest_peak_fwhm(pattern: np.ndarray, step: float) -> float:
    """Full width at half maximum of the highest point's peak, in x units (grid steps times step)."""
    top = int(pattern.argmax())
    half = pattern[top] / 2
    left, right = top, top
    while left > 0 and pattern[left] > half:
        left -= 1
    while right < len(pattern) - 1 and pattern[right] > half:
        right += 1
    return (right - left) * step


def summary(label: str, widths: np.ndarray) -> None:
    q1, median, q3 = np.percentile(widths, [25, 50, 75])
    print(f"{label:<40} n {len(widths):4d}   median {median:.3f}   quartiles {q1:.3f}-{q3:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="xray-cuka")
    parser.add_argument("--set", default="rruff", help="measured evaluation set (benchmarks/accuracy.py names); none: skip")
    parser.add_argument("--n", type=int, default=256, help="synthetic crystals")
    parser.add_argument("--augment-range", nargs="*", default=[], metavar="NAME=LOW:HIGH",
                        help="ranges replacing the realistic ones (as `powdersym train --augment-range`)")
    args = parser.parse_args()

    inst = preset(args.instrument)
    realistic = AugmentConfig.realistic(inst)
    crystals = synthetic_crystals(args.n, SyntheticSettings("crystal_system"), make_generator(5, "cpu"), "cpu")

    def broadening(config: AugmentConfig | None) -> AugmentConfig | None:
        if config is None:
            return None
        return AugmentConfig(crystallite_size=config.crystallite_size, microstrain=config.microstrain,
                             resolution_jitter=config.resolution_jitter)  # fmt: skip

    print(f"{args.instrument}: FWHM of the strongest peak, degrees 2theta (grid step {inst.u_step})")
    variants = [("instrument alone", None), ("realistic", realistic)]
    if args.augment_range:
        variants.append((" ".join(args.augment_range), realistic.with_ranges(parse_ranges(args.augment_range))))
    for label, config in variants:
        patterns = render(crystals.batch, inst, broadening(config), make_generator(1, "cpu"), "cpu").numpy()
        summary(f"synthetic, {label}", np.array([strongest_peak_fwhm(p, inst.u_step) for p in patterns]))
    if args.set != "none":
        from powdersym.evaluate.sets import load_evaluation_set
        from powdersym.predict import Predictor

        data = load_evaluation_set(args.set)
        inputs = np.asarray(data.model_inputs(Predictor.for_instrument(args.instrument)))
        summary(f"measured, {args.set} (as predict prepares it)", np.array([strongest_peak_fwhm(p, inst.u_step) for p in inputs]))


if __name__ == "__main__":
    main()
