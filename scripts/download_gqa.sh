#!/usr/bin/env bash
# Download GQA's raw files for data=gqa (conf/data/gqa.yaml) into the raw dir, by groups. Run with
# no argument for the groups, their sizes and the options. GloVe comes from the VQA v2 script:
#   bash scripts/download_vqa2.sh glove --raw-dir data/gqa/raw
#
# The table below lists the same archives, folders and sizes as butd/preparation/sources.py
# (GQA_ARCHIVES); tests/preparation/test_sources_gqa.py checks that the two agree. Only the
# questions zip's size is GQA's own figure; the others are estimates.
set -euo pipefail

GQA_URL="${BUTD_GQA_URL:-https://nlp.stanford.edu/data/gqa}"
GQA_URL="${GQA_URL%/}"
RAW_DIR="${BUTD_DATA_DIR:-data}/gqa/raw"

# group zip folder download_MB unpacked_MB estimated
ARCHIVES=(
    "questions questions1.2.zip questions1.2 1400 6000 no"
    "eval eval.zip eval 500 2000 yes"
    "objects objectFeatures.zip objects 32000 123000 yes"
)

usage() {
    echo "usage: bash scripts/download_gqa.sh GROUP... [--raw-dir DIR] [--dry-run]"
    echo "groups (into ${RAW_DIR}; sizes in decimal MB, download / unpacked; every unpacked size is estimated):"
    for row in "${ARCHIVES[@]}"; do
        read -r group zip folder mb unpacked estimated <<<"$row"
        note=""
        [[ "$estimated" == yes ]] && note=" (estimated)"
        echo "  ${group}: ${zip} -> ${folder}/, ${mb} / ${unpacked} MB${note}"
    done
    echo "  all: every group above"
}

groups=()
dry_run=no
while [[ $# -gt 0 ]]; do
    case "$1" in
        --raw-dir) RAW_DIR="$2"; shift 2 ;;
        --dry-run) dry_run=yes; shift ;;
        all) groups+=(questions eval objects); shift ;;
        questions|eval|objects) groups+=("$1"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'; expected a group (questions, eval, objects, all) or an option" >&2
           usage >&2; exit 2 ;;
    esac
done
if [[ ${#groups[@]} -eq 0 ]]; then
    usage
    exit 0
fi

for wanted in "${groups[@]}"; do
    for row in "${ARCHIVES[@]}"; do
        read -r group zip folder mb unpacked estimated <<<"$row"
        [[ "$group" == "$wanted" ]] || continue
        url="${GQA_URL}/${zip}"
        if [[ "$dry_run" == yes ]]; then
            echo "${group}: ${url} -> ${RAW_DIR}/${folder}/ (${mb} MB)"
            continue
        fi
        if [[ -f "${RAW_DIR}/${folder}/.complete" ]]; then
            echo "${group}: ${RAW_DIR}/${folder} is complete, nothing to fetch"
            continue
        fi
        mkdir -p "${RAW_DIR}/.zips" "${RAW_DIR}/.unpack/${group}"
        echo "${group}: fetching ${url} (${mb} MB)"
        curl -fL -C - -o "${RAW_DIR}/.zips/${zip}" "$url"
        unzip -q -o "${RAW_DIR}/.zips/${zip}" -d "${RAW_DIR}/.unpack/${group}"
        # a zip holding one folder is unpacked from inside it
        src="${RAW_DIR}/.unpack/${group}"
        entries=("$src"/*)
        if [[ ${#entries[@]} -eq 1 && -d "${entries[0]}" ]]; then
            src="${entries[0]}"
        fi
        mkdir -p "${RAW_DIR}/${folder}"
        cp -a "$src"/. "${RAW_DIR}/${folder}/"
        rm -rf "${RAW_DIR}/.unpack/${group}" "${RAW_DIR}/.zips/${zip}"
        touch "${RAW_DIR}/${folder}/.complete"
        echo "${group}: unpacked into ${RAW_DIR}/${folder}"
    done
done
