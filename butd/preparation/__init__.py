"""Raw files -> processed cache: the feature rows' parallel conversion (`convert`), the text stage
and the build of a cache (`build`), where each raw file comes from (`sources`), and the synthetic
sets in the official formats (`synthetic`). Never imports torch, nor the reading side (`butd.data`)."""
