"""Nothing the user has is ever changed, and bad input is caught before anything trains: each case planted, the
command run as a user runs it, and every file compared byte for byte afterwards. Also: images deeper than 8 bits
read as pictures (not white), a CSV proxy that keeps its source's split, and near copies found as measured."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from toolkit.data import datasets, images
from toolkit.studies.proxies import make_proxy

from conftest import launch


def snapshot(*roots) -> dict:
    """Every file under `roots`: {path: bytes}."""
    return {p: p.read_bytes() for r in roots for p in sorted(Path(r).rglob("*")) if p.is_file()}


def refused(args, message, capsys, *kept):
    """`args` exits 2 with one clear line holding `message`, and leaves every file under `kept` as it was."""
    before = snapshot(*kept)
    code, _, err = launch(args, capsys)
    assert code == 2 and err.startswith("error: ") and message in err, (args, err)
    assert "Traceback" not in err
    assert snapshot(*kept) == before, args


# --- images deeper than 8 bits ----------------------------------------------------------------------------------

def _deep_folder(root: Path, bits: int) -> Path:
    """A folder in Imagenette's layout of `bits`-bit greyscale PNGs: class a dark left, class b dark right."""
    top = 2 ** bits - 1
    ramp = np.linspace(0.1, 0.9, 24)
    for split, n in (("train", 4), ("val", 2)):
        for cls, grad in (("a", ramp), ("b", ramp[::-1])):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                a = np.tile(grad * top, (24, 1)).astype(np.uint16) + i
                Image.fromarray(a).save(root / split / cls / f"{i}.png")   # PIL writes a uint16 array as 16-bit
    return root


def test_to_8bit_rescales_by_the_bit_depth_not_to_white():
    twelve = Image.fromarray(np.array([[0, 2048, 4095]], dtype=np.uint16))
    assert twelve.mode.startswith("I")
    assert np.asarray(images.to_8bit(twelve)).tolist() == [[0, 128, 255]]   # 12 bits: 4095 is white
    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert np.asarray(images.to_8bit(sixteen)).tolist() == [[0, 128, 255]]
    assert np.asarray(twelve.convert("RGB"))[0, 1].tolist() == [255, 255, 255]   # what PIL alone makes of it
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(images.to_8bit(floats)).tolist() == [[0, 128, 255]]
    rgb = Image.new("RGB", (2, 2), (1, 2, 3))
    assert images.to_8bit(rgb) is rgb


def test_16_bit_images_are_pictures_in_the_proxy_the_pack_and_the_folder_loader(tmp_path):
    from toolkit.data.pack import decode
    from toolkit.data.pipeline import RGBImage
    src = _deep_folder(tmp_path / "deep16", 16)
    first = src / "train" / "a" / "0.png"
    with Image.open(first) as im:
        assert im.mode in images.DEEP
    dst = tmp_path / "proxy"
    make_proxy(str(src), dst, per_class=2, size=16, progress="none")
    written = [np.asarray(Image.open(f).convert("L"), dtype=float) for f in sorted(dst.rglob("*.png"))]
    assert written and all(w.std() > 20 and 20 < w.mean() < 235 for w in written)   # a ramp, not white
    packed = decode(first, 24)
    loaded = np.asarray(RGBImage.create(first))
    assert packed.std() > 20 and packed.mean() < 200
    assert np.array_equal(packed, loaded)   # one conversion: the pack and the folder loader see the same picture
    assert loaded[0, 0, 0] < loaded[0, -1, 0]   # class a: dark on the left


# --- a proxy inside its source -----------------------------------------------------------------------------------

def test_a_proxy_inside_its_source_is_refused_and_the_source_is_unchanged(tiny, tmp_path, capsys):
    import shutil
    src = tmp_path / "names"
    shutil.copytree(tiny, src)
    for dst in (src / "proxy", src / "train" / "proxy", src / "deeper" / "still"):
        refused(["data", "proxy", src, dst, "--per-class", 2, "--size", 16], "is inside its source's folder", capsys,
                src)
    table = tmp_path / "table"
    table.mkdir()
    rows = [{"file": str(f), "label": f.parent.name} for f in sorted((src / "train").rglob("*.png"))]
    pd.DataFrame(rows).to_csv(table / "t.csv", index=False)
    refused(["data", "proxy", table / "t.csv", src / "train" / "p", "--per-class", 1, "--size", 16],   # among its images
            "is inside its source's folder", capsys, src, table)


# --- a damaged table ---------------------------------------------------------------------------------------------

def test_a_table_without_its_accuracy_column_is_an_error_and_is_left_as_it_was(tmp_path, capsys):
    from tests.conftest import add_rows
    results = tmp_path / "results"
    add_rows(results, "baseline", [0.5, 0.6])
    table = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False)
    table.drop(columns=["accuracy"]).to_csv(results / "runs.csv", index=False)
    for args in (["compare", "--results", results],
                 ["run", "baseline", "--dataset", "digits", "--epochs", 1, "--results", results, "--quiet"]):
        refused(args, f"The results table {results / 'runs.csv'} is damaged: its header (line 1) lacks the "
                      f"column(s) 'accuracy'", capsys, results)
    assert not (results / "runs").exists()   # nothing trained


# --- checks that once came after a run ---------------------------------------------------------------------------

def test_confirm_without_a_grid_is_refused_before_anything_runs(tmp_path, capsys):
    results = tmp_path / "results"
    refused(["run", "normalize", "--dataset", "digits", "--epochs", 1, "--confirm", "--results", results],
            "--confirm confirms the pick of a grid", capsys, tmp_path)
    assert not results.exists()


def test_fidelity_of_the_full_data_against_itself_is_refused(tiny, tmp_path, capsys):
    rel = os.path.relpath(tiny)
    refused(["fidelity", "normalize", "--proxy", rel, "--full", tiny, "--size", 16, "--results", tmp_path / "r"],
            "is the full data itself", capsys, tiny, tmp_path)
    assert not (tmp_path / "r").exists()


def test_label_re_without_a_group_is_refused(tmp_path, capsys):
    folder = tmp_path / "names"
    folder.mkdir()
    for i in range(6):
        for c in ("cat", "dog"):
            Image.new("RGB", (12, 12), (i * 40, 0, 0)).save(folder / f"{c}_{i}.png")
    refused(["data", "show", folder, "--set", "label_re=^[a-z]+"], "has no group", capsys, folder)
    refused(["run", "baseline", "--dataset", folder, "--set", "label_re=^[a-z]+", "--results", tmp_path / "r"],
            "has no group", capsys, folder)
    code, out, _ = launch(["data", "show", folder, "--set", r"label_re=^(.*)_\d+\.png$"], capsys)
    assert code == 0 and r"label_re='^(.*)_\d+\.png$'" in out   # the expression as given: no doubled backslashes


def test_a_file_that_is_neither_a_table_nor_a_folder_is_one_clear_error(tmp_path, capsys):
    some = tmp_path / "some_file"
    some.write_text("not images")
    for args in (["run", "baseline", "--dataset", some, "--epochs", 1, "--results", tmp_path / "r"],
                 ["show", "baseline", "--dataset", some], ["data", "show", some]):
        refused(args, "is a file, but neither a folder of images nor a table", capsys, tmp_path)


# --- a CSV proxy keeps its split ---------------------------------------------------------------------------------

def test_a_csv_proxy_keeps_the_split_its_source_was_read_with(tiny, tmp_path):
    files = sorted(tiny.rglob("*.png"))
    valid = [i % 3 == 0 for i in range(len(files))]   # another split than valid_pct would draw
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"file": [str(f) for f in files], "extra": "x", "breed": [f.parent.name for f in files],
                  "is_val": valid}).to_csv(src / "t.csv", index=False)
    make_proxy(str(src / "t.csv"), tmp_path / "p", per_class=2, size=16, progress="none", label_col="breed",
               valid_col="is_val")
    proxy = datasets.load(tmp_path / "p" / "t.csv")    # read again with no option at all
    source = datasets.load(src / "t.csv", label_col="breed", valid_col="is_val")
    assert proxy.split == "the column 'is_valid'"
    by_name = {f.name: (s, c) for s in ("train", "val") for f, c in source.items(s)}
    kept = [(f.name.split("-", 1)[1], s, c) for s in ("train", "val") for f, c in proxy.items(s)]   # images/K-NAME
    assert len(kept) >= 2 * len(proxy.classes) and all(by_name[n] == (s, c) for n, s, c in kept)


# --- near copies -------------------------------------------------------------------------------------------------

def _picture(seed: int, box) -> Image.Image:
    """A nearly flat ground with a bright shape: a JPEG's noise flips many bits of a difference hash here."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128]
    a = (120 + 3 * np.sin(x / 9.0) + 2 * np.cos(y / 13.0) + rng.normal(0, 1, (128, 128))).clip(0, 255)
    a[box[0]:box[1], box[2]:box[3]] = 200
    return Image.fromarray(np.stack([a.astype(np.uint8)] * 3, -1))


def test_a_near_copy_whose_hash_differs_by_many_bits_is_found(tmp_path):
    from toolkit.data import audit
    root = tmp_path / "near"
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
    original = _picture(1, (40, 90, 30, 100))
    original.save(root / "val" / "a" / "orig.png")
    buf = io.BytesIO()
    original.resize((64, 64), Image.BICUBIC).save(buf, "JPEG", quality=60)
    (root / "train" / "a" / "copy.jpg").write_bytes(buf.getvalue())   # resized and re-encoded
    for i, box in enumerate([(10, 50, 10, 50), (70, 120, 60, 120), (20, 60, 80, 120)]):
        _picture(10 + i, box).save(root / "train" / "b" / f"other{i}.png")
    _picture(20, (60, 100, 0, 40)).save(root / "val" / "b" / "other.png")
    wide = [np.asarray(im.convert("L").resize((17, 16), Image.BILINEAR), dtype=np.int16)
            for im in (original, Image.open(root / "train" / "a" / "copy.jpg"))]
    bits = [w[:, 1:] > w[:, :-1] for w in wide]
    assert (bits[0] != bits[1]).sum() > 7   # the case the old rule (a hash within 7 bits) missed
    dup = audit.duplicates(datasets.load(root))
    assert [sorted(rel for _, rel, _ in g) for g in dup.near] == [["train/a/copy.jpg", "val/a/orig.png"]]
    assert dup.val_with_copy() == 1


def test_no_two_digits_are_near_copies():
    from toolkit.data import audit
    assert audit.duplicates(datasets.load("digits")).near == []


# --- the guide's commands, and the smaller ones --------------------------------------------------------------------

def test_the_commands_a_user_copies_name_no_path_of_this_checkout():
    root = Path(__file__).resolve().parents[1]
    for page in (root / "README.md", root / "docs" / "getting-started.md"):
        text = page.read_text()
        blocks = text.split("```")[1::2]
        lines = [line for b in blocks for line in b.splitlines() if line.lstrip().startswith(("toolkit", "--"))]
        assert lines and not [line for line in lines if "shared/" in line], page


def test_an_unknown_key_is_shown_with_close_names(capsys):
    refused(["run", "baseline", "--set", "epoch=3"], "Unknown recipe key 'epoch'. Did you mean: epochs", capsys)


def test_a_setting_error_names_the_setting_not_a_recipe(capsys):
    for args, message in [(["run", "normalize", "--set", "valid_pct=2"], "A setting is invalid: valid_pct must"),
                          (["run", "normalize", "--dataset", "digits", "--vary", "bs=8,0"],
                           "--vary bs=0 is invalid: bs must be >= 1"),
                          (["data", "pack", "digits", "--set", "valid_pct=2", "--plan"],
                           "A dataset option is invalid: valid_pct must be in (0, 1)")]:
        refused(args, message, capsys)
        assert "Recipe 'baseline'" not in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly():
    p = subprocess.Popen([sys.executable, "-m", "toolkit", "data", "check", "digits"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    assert p.wait(timeout=120) == 141 and b"Traceback" not in p.stderr.read()


def test_the_face_takes_a_recipe_and_any_module_first():
    code = ("import toolkit.api as api; from toolkit.recipes.recipe import Recipe; "
            "print(api.show('normalize')['config_id']); print(api.show(Recipe(name='mine', lr=0.01))['lr'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == "0.01" and len(p.stdout.split()[0]) == 12


def test_a_dataframe_is_named_as_a_dataframe_and_labelled_by_what_the_user_gave(tiny):
    import toolkit
    from toolkit.errors import DatasetError
    from toolkit.records.schema import meaning
    from toolkit.sweep.plan import context_of
    files = sorted(tiny.rglob("*.png"))
    df = pd.DataFrame({"file": [str(f) for f in files], "breed": [f.parent.name for f in files]})
    with pytest.raises(DatasetError, match=r"^The DataFrame given as dataset \(kept as .*\) has no column 'nope'"):
        toolkit.data_show(df, label_col="nope")
    ctx = context_of(dataset=df, label_col="breed")
    recipe = toolkit.api.resolved("baseline", **ctx)
    assert recipe.dataset_hash and recipe.fn_col == "file"
    assert meaning(recipe, ctx)["label"] == "baseline [label_col=breed]"


def test_the_rank_line_says_none_below_three_recipes():
    from toolkit.studies.fidelity import tau_line
    assert tau_line(float("nan"), float("nan"), float("nan"), 1) == \
        "Rank correlation of the effects: none (Kendall's tau needs at least 3 recipes; 1 here)"
    assert "nan" not in tau_line(float("nan"), float("nan"), float("nan"), 2)
    assert tau_line(0.5, 0.1, 0.9, 8).endswith("recipes): +0.50, 95% bootstrap interval over recipes and seeds "
                                               "[+0.10, +0.90]")
    assert "no interval: 4 recipes are too few to resample" in tau_line(0.5, float("nan"), float("nan"), 4)


def test_odd_pixels_and_odd_bytes_are_read_not_crashed_on(tmp_path):
    """A float image with a 'no data' NaN, thumbnails all flat, and a table saved with a byte-order mark."""
    from toolkit.data.audit import _near_groups
    from toolkit.records.table import check_table
    nan = Image.fromarray(np.array([[0.0, 0.5, np.nan, 1.0]], dtype=np.float32))
    assert np.asarray(images.to_8bit(nan)).tolist() == [[0, 128, 0, 255]]
    assert _near_groups(["00" * 256, "00" * 256, "11" * 256]) == []
    from tests.conftest import add_rows
    add_rows(tmp_path / "r", "baseline", [0.5])
    path = tmp_path / "r" / "runs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert check_table(path)[0] == "run_id"
