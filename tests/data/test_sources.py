"""Folders as users have them: class folders alone (split by valid_pct, drawn once with a generator of its own),
and train/ beside valid/ or test/."""
import shutil
from pathlib import Path
from dataclasses import replace

import pytest
import torch

from conftest import resolved
from toolkit.data import datasets as data
from toolkit.data import pack as packs
from toolkit.data import pipeline, sources
from toolkit.errors import DatasetError, RecipeError
from toolkit.recipes import registry
from toolkit.recipes.recipe import Recipe


@pytest.fixture(scope="module")
def class_folders(tiny, tmp_path_factory):
    """The tiny digits as one folder of class folders: its train and val images together, no split."""
    root = tmp_path_factory.mktemp("sources") / "digits-classes"
    for split in ("train", "val"):
        for d in (p for p in (tiny / split).iterdir() if p.is_dir()):
            (root / d.name).mkdir(parents=True, exist_ok=True)
            for f in d.iterdir():
                shutil.copy(f, root / d.name / f"{split}-{f.name}")
    shutil.copy(tiny / data.SETTINGS, root / data.SETTINGS)   # still digits: never mirrored
    return root


def test_class_folders_are_split_once_by_class_and_always_the_same_way(class_folders):
    rng = torch.get_rng_state()
    ds = data.load(class_folders)
    assert torch.equal(torch.get_rng_state(), rng)                 # the run's generators are never drawn from
    every = sorted(f for d in class_folders.iterdir() if d.is_dir() for f in d.iterdir())
    assert sorted(ds.files["train"] + ds.files["val"]) == every and not set(ds.files["train"]) & set(ds.files["val"])
    for cls in ds.classes:                                         # stratified: each class validates its share
        n = sum(f.parent.name == cls for f in every)
        assert sum(f.parent.name == cls for f in ds.files["val"]) == max(1, round(0.2 * n))
    assert data.load(class_folders).files == ds.files and ds.split == sources.split_rule(0.2, 0)
    other = data.load(class_folders, split_seed=1)                 # another split is another dataset
    assert other.files["val"] != ds.files["val"] and other.fingerprint != ds.fingerprint
    assert packs.pack_dir(other, 32) != packs.pack_dir(ds, 32)
    assert data.load(class_folders, valid_pct=0.4).fingerprint not in (ds.fingerprint, other.fingerprint)


def test_every_recipe_and_seed_is_judged_on_the_same_images_and_starts_from_its_own_weights(class_folders):
    from toolkit.train.learner import fresh_learner

    def recipe(name, seed, loader="packed"):
        return resolved(replace(registry.get(name), dataset=str(class_folders), size=16, bs=8, arch="xresnet18",
                                seed=seed, loader=loader))
    a, b = (pipeline.prepare(recipe(n, s), progress="none") for n, s in (("baseline", 42), ("normalize", 43)))
    assert a.ds.files == b.ds.files
    for loader in ("packed", "folder"):   # the folder DataBlock splits by the dataset's own lists, drawing nothing
        first = [next(fresh_learner(recipe("baseline", s, loader), a, 16, num_workers=0).model.parameters())
                 .detach().clone() for s in (42, 43, 42)]
        assert not torch.equal(first[0], first[1]) and torch.equal(first[0], first[2]), loader
        dls = fresh_learner(recipe("baseline", 42, loader), a, 16, num_workers=0).dls
        assert len(dls.valid_ds) == len(a.ds.files["val"])


def test_a_run_on_class_folders_packs_and_validates_its_split(class_folders, tmp_path):
    from toolkit import api
    done = api.run("baseline", dataset=str(class_folders), size=16, epochs=1, arch="xresnet18", bs=8, seeds=2,
                   reference=False, results=tmp_path / "r", quiet=True, log=lambda *a: None)
    rows = done.sweep.rows
    assert len(rows) == 2 and (rows["n_valid"] == len(data.load(class_folders).files["val"])).all()
    assert rows["accuracy"].between(0, 1).all()


def test_a_run_on_a_csv_reads_its_label_column_and_records_how(csv_source, tmp_path):
    import json
    from toolkit import api
    done = api.run("baseline", dataset=str(csv_source), label_col="noisy", size=16, epochs=1, arch="xresnet18",
                   bs=8, reference=False, results=tmp_path / "r", quiet=True, log=lambda *a: None)
    row = done.sweep.rows.iloc[0]
    saved = json.loads((Path(row["run_dir"]) / "recipe.json").read_text())
    assert (saved["label_col"], saved["valid_col"]) == ("noisy", "is_valid") and 0 <= row["accuracy"] <= 1
    assert saved["dataset_source"]["read"].startswith("labels.csv (sha1 ") and "'noisy'" in saved["dataset_source"]["read"]
    assert saved["dataset_id"] == data.load(csv_source, label_col="noisy").fingerprint


@pytest.mark.parametrize("name", ["valid", "test"])
def test_train_beside_valid_or_test_is_the_folders_own_split(tiny, tmp_path, name):
    root = tmp_path / "ds"
    shutil.copytree(tiny, root)
    (root / "val").rename(root / name)
    ds = data.load(root)
    assert ds.split == f"the folder's own: train/ and {name}/"
    assert ds.files["val"] and all(f.parent.parent.name == name for f in ds.files["val"])


def test_bad_splits_are_one_clear_error(class_folders, tmp_path):
    with pytest.raises(RecipeError, match=r"valid_pct must be in \(0, 1\)"):
        Recipe(valid_pct=1.5)
    lonely = tmp_path / "lonely"
    shutil.copytree(class_folders, lonely)
    for f in sorted((lonely / "3").iterdir())[1:]:
        f.unlink()
    with pytest.raises(DatasetError, match=r"class\(es\) 3 \(1 image\) have too few images for a split"):
        data.load(lonely)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no sub-folder of images"):
        data.load(tmp_path / "empty")
    with pytest.raises(RecipeError, match=r"split_seed must be a whole number >= 0"):
        Recipe(split_seed=-1)
    with pytest.raises(DatasetError, match=r"Cannot split dataset .*split_seed must be a whole number >= 0"):
        data.load(class_folders, split_seed=-1)


def test_a_dataset_with_its_own_split_ignores_valid_pct_and_split_seed(tiny, class_folders):
    """They do nothing there, so they neither change a run's id nor say what did not happen."""
    from toolkit.recipes.identity import config_id
    base = replace(registry.get("baseline"), size=16, arch="xresnet18")
    for dataset in ("digits", str(tiny)):
        plain, other = (resolved(replace(base, dataset=dataset, **kw)) for kw in ({}, dict(valid_pct=0.5, split_seed=3)))
        assert (other.valid_pct, other.split_seed) == (0.2, 0) and config_id(other) == config_id(plain)
    drawn = resolved(replace(base, dataset=str(class_folders), valid_pct=0.5))
    assert drawn.valid_pct == 0.5 and config_id(drawn) != config_id(resolved(replace(base, dataset=str(class_folders))))


# --- a CSV of file names and labels, a DataFrame, labels in file names -------------------------------------------

@pytest.fixture(scope="module")
def csv_source(tiny, tmp_path_factory):
    """The tiny digits described by a CSV beside them, as fast.ai's noisy_imagenette.csv describes Imagenette: a
    file name, the clean label, a noisy one (every third training label moved to the next class) and is_valid."""
    import pandas as pd
    root = tmp_path_factory.mktemp("csv") / "digits-csv"
    shutil.copytree(tiny, root)
    rows = []
    for split in ("train", "val"):
        for i, f in enumerate(sorted((root / split).rglob("*.png"))):
            label = f.parent.name
            noisy = str((int(label) + 1) % 10) if split == "train" and i % 3 == 0 else label
            rows.append({"path": str(f.relative_to(root)), "clean": label, "noisy": noisy, "is_valid": split == "val"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def test_a_csv_reads_its_first_columns_and_its_is_valid_split_as_it_comes(csv_source, tiny):
    folder = data.load(tiny)
    ds = data.load(csv_source)
    assert sorted(map(ds.relative, ds.files["val"])) == sorted(map(folder.relative, folder.files["val"]))
    assert ds.split == "the column 'is_valid'"
    assert [f.parent.name for f in ds.files["train"]] == list(ds.labels["train"])   # "clean": the class folders
    noisy = data.load(csv_source, label_col="noisy")
    assert sorted(noisy.files["train"]) == sorted(ds.files["train"])                 # the same images,
    assert noisy.labels["train"] != ds.labels["train"] and noisy.labels["val"] == ds.labels["val"]  # other labels
    assert noisy.fingerprint != ds.fingerprint                                        # another dataset:
    assert packs.pack_dir(noisy, 32) != packs.pack_dir(ds, 32)                       # its own caches and pack
    by_position = data.load(csv_source, fn_col="0", label_col="2")
    assert by_position.fingerprint == noisy.fingerprint                               # fastai's fn_col=0, label_col=1


def test_a_csv_is_part_of_the_run_id_by_its_columns_and_content(csv_source, tmp_path):
    from toolkit.recipes.identity import config_id
    base = replace(registry.get("baseline"), dataset=str(csv_source), size=16, arch="xresnet18")
    clean, noisy = resolved(base), resolved(replace(base, label_col="noisy"))
    assert (clean.fn_col, clean.label_col, clean.valid_col) == ("path", "clean", "is_valid")
    assert clean.dataset_hash and config_id(clean) != config_id(noisy)
    assert (clean.valid_pct, clean.label_re) == (0.2, "")                         # what does nothing here, at defaults
    assert config_id(resolved(replace(base, label_col="1"))) == config_id(clean)  # a position is its column's name
    edited = tmp_path / "labels.csv"
    shutil.copy(csv_source, edited)
    with edited.open("a") as fh:
        fh.write(f"{csv_source.parent}/train/1/{sorted((csv_source.parent / 'train' / '1').iterdir())[0].name},1,1,True\n")
    changed = resolved(replace(base, dataset=str(edited)))
    assert changed.dataset_hash != clean.dataset_hash and config_id(changed) != config_id(clean)
    with pytest.raises(DatasetError, match="has changed since this run was planned"):
        data.load(edited, **{**data.options_of(changed), "dataset_hash": clean.dataset_hash})


def test_a_dataframe_is_written_once_by_content_and_a_csv_without_split_column_draws_one(csv_source, tmp_path):
    import pandas as pd
    from toolkit import api
    df = pd.read_csv(csv_source).drop(columns=["is_valid"])
    df["path"] = [str(csv_source.parent / p) for p in df["path"]]
    ctx, again = api.context(dataset=df), api.context(dataset=df.copy())
    assert ctx["dataset"] == again["dataset"] and ctx["dataset"].endswith(".csv")    # named by content, written once
    ds = data.load(ctx["dataset"], folder=ctx["folder"])
    assert ds.split == sources.split_rule(0.2, 0) and len(ds.files["val"]) == sum(
        max(1, round(0.2 * n)) for n in pd.Series(ds.labels["train"] + ds.labels["val"]).value_counts())
    assert data.load(ctx["dataset"], folder=ctx["folder"]).files == ds.files        # drawn the same way each time
    relative = df.assign(path=[p.removeprefix(str(csv_source.parent) + "/").removesuffix(".png") for p in df["path"]])
    (tmp_path / "rel.csv").write_text(relative.to_csv(index=False))
    shutil.copytree(csv_source.parent / "train", tmp_path / "imgs" / "train")
    shutil.copytree(csv_source.parent / "val", tmp_path / "imgs" / "val")
    moved = data.load(tmp_path / "rel.csv", folder="imgs", suff=".png")              # fastai's folder= and suff=
    assert sorted(map(str, moved.labels["train"] + moved.labels["val"])) == sorted(ds.labels["train"] + ds.labels["val"])


def test_labels_from_file_names(class_folders, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted(class_folders.rglob("*.png")):
        shutil.copy(f, flat / f"digit{f.parent.name}_{f.name}")
    ds = data.load(flat, label_re=r"^digit(\d)_")
    by_folders = data.load(class_folders)
    assert ds.classes == by_folders.classes and ds.read.startswith("labels from file names")
    assert sorted(ds.labels["train"] + ds.labels["val"]) == sorted(by_folders.labels["train"] + by_folders.labels["val"])
    (flat / "readme.png").write_bytes((flat / sorted(p.name for p in flat.iterdir())[0]).read_bytes())
    with pytest.raises(DatasetError, match=r"label_re gives no label for 1 of .* e.g. readme.png"):
        data.load(flat, label_re=r"^digit(\d)_")
    with pytest.raises(DatasetError, match=r"is not a regular expression"):
        data.load(flat, label_re=r"^digit(\d_")


def test_bad_csvs_are_one_clear_error_naming_the_file_row_or_column(csv_source, tmp_path):
    import pandas as pd
    df = pd.read_csv(csv_source)

    def bad(name, frame):
        f = csv_source.parent / name
        frame.to_csv(f, index=False)
        return f
    cases = [
        (bad("missing.csv", df.assign(path=["nowhere/" + p for p in df["path"]])),
         {}, rf"{len(df)} of {len(df)} file name\(s\) in column 'path' name no file .* e\.g\. .*nowhere"),
        (csv_source, {"label_col": "breed"}, r"has no column 'breed' for label_col \(its columns: path, clean, noisy"),
        (bad("empty.csv", df.assign(clean=[""] + list(df["clean"][1:]))), {}, r"column 'clean' is empty in 1 row\(s\) \(data rows 1\)"),
        (bad("notbool.csv", df.assign(is_valid=["maybe"] * len(df))), {},
         r"split column 'is_valid' must be boolean .* data row 1 holds 'maybe'"),
        (bad("multi.csv", df.assign(clean=["1 7"] + list(df["clean"][1:]))), {"label_delim": " "},
         r"holds several labels split by ' ' in 1 row\(s\) .* multi-label"),
    ]
    for f, options, message in cases:
        with pytest.raises(DatasetError, match=message):
            data.load(f, **options)
    with pytest.raises(DatasetError, match=r"valid_pct must be in \(0, 1\)"):
        data.load(csv_source, valid_pct=0)


def test_a_proxy_of_a_csv_is_sampled_by_row_and_says_what_it_came_from(csv_source, tmp_path):
    import json

    import pandas as pd
    from toolkit.studies.proxies import make_proxy
    done = make_proxy(str(csv_source), tmp_path / "p", per_class=2, size=16, seed=1, progress="none",
                      classes="2,3,5")
    proxy = Path(done["path"])
    rows = pd.read_csv(proxy)
    assert proxy.name == "labels.csv" and list(rows.columns) == ["path", "clean", "noisy", "is_valid"]
    assert done["classes"] == 3 and sorted(set(rows["clean"])) == [2, 3, 5] and (~rows["is_valid"]).sum() == 6
    clean, noisy = data.load(proxy), data.load(proxy, label_col="noisy")
    assert sorted(clean.files["train"]) == sorted(noisy.files["train"])             # the same images in both
    info = json.loads((proxy.parent / "proxy.json").read_text())
    assert info["source"] == str(csv_source) and info["fingerprint"] == data.load(csv_source).fingerprint
    assert (info["per_class"], info["size"], info["seed"], info["classes"]) == (2, 16, 1, ["2", "3", "5"])
    assert data.load(proxy).describe()["proxy_of"] == info                           # what a run's record keeps
    k = make_proxy(str(csv_source), tmp_path / "k", per_class=2, size=16, seed=1, progress="none", classes=4)
    assert k["classes"] == 4
    with pytest.raises(DatasetError, match=r"--classes: 'eleven' are not classes of"):
        make_proxy(str(csv_source), tmp_path / "x", per_class=2, size=16, progress="none", classes="1,eleven")


def test_names_are_read_as_written_each_image_has_one_row_and_a_proxy_keeps_every_image_apart(csv_source, tmp_path):
    import pandas as pd
    from toolkit.studies.proxies import make_proxy
    imgs, meta = tmp_path / "imgs", tmp_path / "meta"
    meta.mkdir()
    rows = []
    for d in sorted(p for p in (csv_source.parent / "train").iterdir() if p.is_dir())[:6]:
        (imgs / d.name).mkdir(parents=True)
        for k, f in enumerate(sorted(d.iterdir())[:2]):                     # 0000.png, 0001.png in each class
            shutil.copy(f, imgs / d.name / f"{k:04d}.png")
            rows.append({"fn": f"{d.name}/{k:04d}", "label": f"0{d.name}", "is_valid": k})
    pd.DataFrame(rows).to_csv(meta / "ids.csv", index=False)
    ds = data.load(meta / "ids.csv", folder="../imgs", suff=".png")          # 0000 stays 0000, 01 stays 01
    assert all(c.startswith("0") for c in ds.classes)
    proxy = make_proxy(str(meta / "ids.csv"), tmp_path / "p", per_class=1, size=16, progress="none",
                       folder="../imgs", suff=".png")
    written = pd.read_csv(proxy["path"], dtype=str)
    assert written["fn"].is_unique and len(written) == proxy["train"] + proxy["val"]   # no image written over another
    pd.DataFrame(rows + rows[:1]).to_csv(meta / "twice.csv", index=False)
    with pytest.raises(DatasetError, match=r"appear in more than one row \(data rows 1 and 13"):
        data.load(meta / "twice.csv", folder="../imgs", suff=".png")


def test_a_recorded_content_hash_is_kept_and_an_unreadable_file_cannot_leave_a_class_only_in_validation(
        csv_source, tmp_path):
    recipe = data.with_dataset(Recipe(dataset=str(csv_source), size=16, dataset_hash="000000000000"))
    assert recipe.dataset_hash == "000000000000"                       # not quietly replaced by today's
    with pytest.raises(DatasetError, match="has changed since this run was planned"):
        data.of_recipe(recipe)
    root = tmp_path / "rare"
    for split, name in (("train", "r0.png"), ("val", "rv.png")):
        (root / split / "rare").mkdir(parents=True)
        shutil.copy(next((csv_source.parent / split / "1").iterdir()), root / split / "rare" / name)
    for d in ("2", "3"):
        shutil.copytree(csv_source.parent / "train" / d, root / "train" / d)
        shutil.copytree(csv_source.parent / "val" / d, root / "val" / d)
    (root / "train" / "rare" / "r0.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="Skipping 1 unreadable"), \
            pytest.raises(DatasetError, match=r"classes in validation \(its readable images\) that training .* \(rare\)"):
        data.load(root)
