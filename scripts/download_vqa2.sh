#!/usr/bin/env bash
# Download the official VQA v2 raw files that butd's data configs use (conf/data/vqa2*.yaml)
# into the raw dir, by groups. Run with no argument for the groups, their sizes and the options.
#
# The archive table below lists the same archives, members and sizes as butd/preparation/sources.py;
# tests/data/test_sources.py checks that the two agree.
set -euo pipefail

SCRIPT="scripts/download_vqa2.sh"

# Base URLs; mirrors move, so each can be replaced through the environment.
VQA_URL="${BUTD_VQA_URL:-https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa}"
FEATURES_URL="${BUTD_FEATURES_URL:-https://imagecaption.blob.core.windows.net/imagecaption}"
GLOVE_URL="${BUTD_GLOVE_URL:-http://nlp.stanford.edu/data}"
VQACP_URL="${BUTD_VQACP_URL:-https://computing.ece.vt.edu/~aish/vqacp}"
VG_URL="${BUTD_VG_URL:-https://visualgenome.org/static/data/dataset}"
VQA_URL="${VQA_URL%/}"
FEATURES_URL="${FEATURES_URL%/}"
GLOVE_URL="${GLOVE_URL%/}"
VQACP_URL="${VQACP_URL%/}"
VG_URL="${VG_URL%/}"

GROUP_ORDER=(questions annotations features36 test36 adaptive test_adaptive glove vqacp vg)

group_description() {
    case "$1" in
        questions) echo "VQA v2 questions: train2014, val2014, test2015, test-dev2015" ;;
        annotations) echo "VQA v2 annotations: train2014, val2014" ;;
        features36) echo "features, 36 boxes per image: train2014 + val2014 images" ;;
        test36) echo "features, 36 boxes per image: test2015 images" ;;
        adaptive) echo "features, 10-100 boxes per image: train2014 + val2014 images" ;;
        test_adaptive) echo "features, 10-100 boxes per image: test2015 images" ;;
        glove) echo "GloVe 6B word vectors (only the 300-d file is unpacked)" ;;
        vqacp) echo "VQA-CP v2 questions and annotations: train, test (plain JSON files)" ;;
        vg) echo "Visual Genome v1.2 question-answer pairs and image data (sizes estimated)" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# The archive table. One `add_archive GROUP URL ZIP_MB FILE...` per archive; each FILE is
# MEMBER:MB (the zip member, unpacked to the same path under the raw dir) or MEMBER=DEST:MB
# (moved to DEST). Sizes are approximate, in decimal MB.

A_GROUP=()
A_URL=()
A_MB=()
A_FILES=()

add_archive() {
    A_GROUP+=("$1")
    A_URL+=("$2")
    A_MB+=("$3")
    shift 3
    A_FILES+=("$*")
}

add_archive questions "$VQA_URL/v2_Questions_Train_mscoco.zip" 7 \
    v2_OpenEnded_mscoco_train2014_questions.json:42
add_archive questions "$VQA_URL/v2_Questions_Val_mscoco.zip" 3 \
    v2_OpenEnded_mscoco_val2014_questions.json:20
add_archive questions "$VQA_URL/v2_Questions_Test_mscoco.zip" 9 \
    v2_OpenEnded_mscoco_test2015_questions.json:42 \
    v2_OpenEnded_mscoco_test-dev2015_questions.json:16
add_archive annotations "$VQA_URL/v2_Annotations_Train_mscoco.zip" 21 \
    v2_mscoco_train2014_annotations.json:356
add_archive annotations "$VQA_URL/v2_Annotations_Val_mscoco.zip" 10 \
    v2_mscoco_val2014_annotations.json:172
add_archive features36 "$FEATURES_URL/trainval_36.zip" 25000 \
    trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv:49000
add_archive test36 "$FEATURES_URL/test2015_36.zip" 17000 \
    test2015_36/test2015_resnet101_faster_rcnn_genome_36.tsv:32000
add_archive adaptive "$FEATURES_URL/trainval.zip" 23000 \
    trainval/karpathy_train_resnet101_faster_rcnn_genome.tsv.0:20700 \
    trainval/karpathy_train_resnet101_faster_rcnn_genome.tsv.1:20700 \
    trainval/karpathy_val_resnet101_faster_rcnn_genome.tsv:1800 \
    trainval/karpathy_test_resnet101_faster_rcnn_genome.tsv:1800
add_archive test_adaptive "$FEATURES_URL/test2015.zip" 15000 \
    test2015/test2015_resnet101_faster_rcnn_genome.tsv:28000
add_archive glove "$GLOVE_URL/glove.6B.zip" 862 \
    glove.6B.300d.txt=glove/glove.6B.300d.txt:1040
add_archive vg "$VG_URL/question_answers.json.zip" 100 \
    question_answers.json=visual_genome/question_answers.json:350
add_archive vg "$VG_URL/image_data.json.zip" 2 \
    image_data.json=visual_genome/image_data.json:17

# Plain files, fetched as they are (no archive): `add_file GROUP URL MB`, the file keeping its name.
F_GROUP=()
F_URL=()
F_MB=()

add_file() {
    F_GROUP+=("$1")
    F_URL+=("$2")
    F_MB+=("$3")
}

add_file vqacp "$VQACP_URL/vqacp_v2_train_questions.json" 50
add_file vqacp "$VQACP_URL/vqacp_v2_test_questions.json" 25
add_file vqacp "$VQACP_URL/vqacp_v2_train_annotations.json" 350
add_file vqacp "$VQACP_URL/vqacp_v2_test_annotations.json" 180

# ---------------------------------------------------------------------------------------------
# Helpers

die() {
    echo "error: $*" >&2
    exit 1
}

# 7 -> "about 7 MB", 25000 -> "about 25 GB"
human_mb() {
    awk -v mb="$1" 'BEGIN {
        if (mb < 1000) printf "about %d MB", mb
        else if (mb < 10000) printf "about %.1f GB", mb / 1000
        else printf "about %d GB", mb / 1000 + 0.5
    }'
}

file_bytes() {
    stat -c %s "$1" 2>/dev/null || stat -f %z "$1"
}

bytes_to_mb() {
    awk -v b="$1" 'BEGIN { printf "%d", b / 1e6 }'
}

# 56000 -> "56 KB", 12300000000 -> "12.3 GB"
human_bytes() {
    awk -v b="$1" 'BEGIN {
        if (b < 1e6) printf "%d KB", b / 1e3
        else if (b < 1e9) printf "%d MB", b / 1e6
        else printf "%.1f GB", b / 1e9
    }'
}

# MEMBER[=DEST]:MB -> member, destination, size
spec_member() {
    local s="${1%:*}"
    echo "${s%%=*}"
}
spec_dest() {
    local s="${1%:*}"
    echo "${s#*=}"
}
spec_mb() {
    echo "${1##*:}"
}

# what the zips of group $1 take while they are unpacked (plain files are not unpacked)
group_zip_mb() {
    local g="$1" i total=0
    for i in "${!A_GROUP[@]}"; do
        if [[ "${A_GROUP[$i]}" == "$g" ]]; then total=$((total + A_MB[i])); fi
    done
    echo "$total"
}

# what group $1 downloads: its zips and its plain files
group_download_mb() {
    local g="$1" i total
    total=$(group_zip_mb "$g")
    for i in "${!F_GROUP[@]}"; do
        if [[ "${F_GROUP[$i]}" == "$g" ]]; then total=$((total + F_MB[i])); fi
    done
    echo "$total"
}

group_unpacked_mb() {
    local g="$1" i f total=0
    for i in "${!A_GROUP[@]}"; do
        [[ "${A_GROUP[$i]}" == "$g" ]] || continue
        for f in ${A_FILES[$i]}; do
            total=$((total + $(spec_mb "$f")))
        done
    done
    for i in "${!F_GROUP[@]}"; do
        if [[ "${F_GROUP[$i]}" == "$g" ]]; then total=$((total + F_MB[i])); fi
    done
    echo "$total"
}

usage() {
    local g dl up zip all_dl=0 all_up=0 all_zip=0
    cat <<EOF
usage: bash $SCRIPT [--raw-dir DIR] [--keep-zips] [--dry-run] [--no-space-check] GROUP...

Downloads the official VQA v2 raw files into the raw dir (default \${BUTD_DATA_DIR:-data}/vqa2/raw,
the data configs' data.raw_dir) and unpacks only the files butd reads. The features are the
bottom-up-attention project's Faster R-CNN (ResNet-101, Visual Genome) features.

groups (sizes are approximate; disk = zip + unpacked, needed while an archive is unpacked):
EOF
    printf '  %-14s %-14s %-14s %-14s %s\n' GROUP DOWNLOAD UNPACKED DISK CONTENT
    for g in "${GROUP_ORDER[@]}"; do
        dl=$(group_download_mb "$g")
        up=$(group_unpacked_mb "$g")
        zip=$(group_zip_mb "$g")
        all_dl=$((all_dl + dl))
        all_up=$((all_up + up))
        all_zip=$((all_zip + zip))
        printf '  %-14s %-14s %-14s %-14s %s\n' "$g" "$(human_mb "$dl")" "$(human_mb "$up")" \
            "$(human_mb $((zip + up)))" "$(group_description "$g")"
    done
    printf '  %-14s %-14s %-14s %-14s %s\n' all "$(human_mb "$all_dl")" "$(human_mb "$all_up")" \
        "$(human_mb $((all_zip + all_up)))" "every group above"
    cat <<EOF

  data=vqa2 needs           questions annotations features36 glove
  data=vqa2_test needs      the same plus test36
  data=vqa2_adaptive needs  questions annotations adaptive glove
  data=vqacp2 needs         vqacp glove, and data=vqa2's prepared cache (its features are read)
  data=vqa2_vg needs        questions annotations features36 glove vg

options:
  --raw-dir DIR      where the files go (default: \${BUTD_DATA_DIR:-data}/vqa2/raw)
  --keep-zips        keep each zip in RAW/downloads/ after unpacking it; by default a zip is
                     deleted once its files are unpacked (the marker RAW/downloads/
                     NAME.done remembers their sizes, so nothing is fetched again)
  --dry-run          print what would be fetched and where; no network, nothing written
  --no-space-check   skip the free-disk-space check made before each download

Downloads resume: an interrupted run leaves RAW/downloads/NAME.zip.part, and the next run
continues it (curl -C -, or wget -c when curl is missing). Files already unpacked (with the
size their marker records) are skipped. A zip is unpacked into RAW/downloads/NAME.unpack/
and each file moved into place only when complete.

mirrors (set these to fetch from elsewhere):
  BUTD_VQA_URL       now $VQA_URL
  BUTD_FEATURES_URL  now $FEATURES_URL
  BUTD_GLOVE_URL     now $GLOVE_URL
  BUTD_VQACP_URL     now $VQACP_URL
  BUTD_VG_URL        now $VG_URL

then: python -m butd.prepare data=vqa2   (see README, "Real data: VQA v2")
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments

RAW_DIR="${BUTD_DATA_DIR:-data}/vqa2/raw"
KEEP_ZIPS=0
DRY_RUN=0
SPACE_CHECK=1
SELECTED=()

if [[ $# -eq 0 ]]; then
    usage
    exit 0
fi

while [[ $# -gt 0 ]]; do
    case "$1" in
        --raw-dir)
            [[ $# -ge 2 ]] || die "--raw-dir needs a directory"
            RAW_DIR="$2"
            shift
            ;;
        --raw-dir=*) RAW_DIR="${1#--raw-dir=}" ;;
        --keep-zips) KEEP_ZIPS=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --no-space-check) SPACE_CHECK=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        all) SELECTED+=("${GROUP_ORDER[@]}") ;;
        questions | annotations | features36 | test36 | adaptive | test_adaptive | glove | vqacp | vg)
            SELECTED+=("$1")
            ;;
        *)
            echo "error: unknown argument '$1'" >&2
            echo >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done

[[ ${#SELECTED[@]} -gt 0 ]] || die "name at least one group (or all); run without arguments for the list"
[[ -n "$RAW_DIR" ]] || die "--raw-dir is empty"
RAW_DIR="${RAW_DIR%/}"
DOWNLOADS="$RAW_DIR/downloads"

# the selected groups, each once, in the table's order
GROUPS_TO_DO=()
for g in "${GROUP_ORDER[@]}"; do
    for s in "${SELECTED[@]}"; do
        if [[ "$s" == "$g" ]]; then
            GROUPS_TO_DO+=("$g")
            break
        fi
    done
done

# ---------------------------------------------------------------------------------------------
# Per archive

# the size the marker of archive $1 records for $2, or nothing
marker_size() {
    local marker="$DOWNLOADS/$1.done"
    [[ -f "$marker" ]] || return 0
    awk -F '\t' -v d="$2" '$1 == d { print $2 }' "$marker"
}

# is the raw file $2 of archive $1 in place (with the size its marker records, if any)?
file_present() {
    local dest="$RAW_DIR/$2" want
    [[ -f "$dest" ]] || return 1
    want=$(marker_size "$1" "$2")
    [[ -z "$want" || "$want" == "$(file_bytes "$dest")" ]]
}

free_mb() {
    local dir="$1"
    while [[ ! -d "$dir" ]]; do dir=$(dirname "$dir"); done
    df -Pk "$dir" | awk 'NR == 2 { printf "%d", $4 * 1024 / 1e6 }'
}

check_space() {
    local name="$1" need="$2" what="$3" have msg
    [[ $SPACE_CHECK -eq 1 ]] || return 0
    have=$(free_mb "$RAW_DIR")
    # the sizes are estimates: ask for 5% and 100 MB more
    if [[ $have -lt $((need + need / 20 + 100)) ]]; then
        msg="not enough free disk space for $name under $RAW_DIR: it needs $(human_mb "$need")"
        msg+=" ($what) and $(human_mb "$have") is free. Free some space, choose a bigger disk with"
        msg+=" --raw-dir DIR (or BUTD_DATA_DIR), or skip this check with --no-space-check."
        die "$msg"
    fi
}

fetch() {
    local url="$1" part="$2"
    if command -v curl >/dev/null 2>&1; then
        curl -C - -L --fail --retry 3 --retry-delay 10 -o "$part" "$url"
    elif command -v wget >/dev/null 2>&1; then
        wget -c -O "$part" "$url"
    else
        die "neither curl nor wget is installed; install one of them"
    fi
}

# the entry of zip $1 for member $2: the same path, else the one entry with its file name
zip_entry() {
    local zip="$1" member="$2" listing matches
    listing=$(unzip -Z1 "$zip")
    if grep -Fxq -- "$member" <<<"$listing"; then
        echo "$member"
        return 0
    fi
    matches=$(grep -E "(^|/)$(basename "$member" | sed 's/[.[\*^$]/\\&/g')\$" <<<"$listing" || true)
    if [[ -n "$matches" && $(wc -l <<<"$matches") -eq 1 ]]; then
        echo "$matches"
        return 0
    fi
    die "$zip has no entry $member (its entries: $(tr '\n' ' ' <<<"$listing"))"
}

do_archive() {
    local i="$1" url="${A_URL[$1]}" name f member dest need_mb=0 zip_mb part_mb part_bytes entry stage
    local todo=()
    name="${url##*/}"
    for f in ${A_FILES[$i]}; do
        if ! file_present "$name" "$(spec_dest "$f")"; then
            todo+=("$f")
            need_mb=$((need_mb + $(spec_mb "$f")))
        fi
    done
    local zip="$DOWNLOADS/$name" part="$DOWNLOADS/$name.part"

    if [[ ${#todo[@]} -eq 0 ]]; then
        echo "$name: files in place, nothing to fetch"
        return 0
    fi

    if [[ $DRY_RUN -eq 1 ]]; then
        if [[ -f "$zip" ]]; then
            echo "$name: already downloaded at $zip"
        else
            echo "$name: would download $url"
            echo "    -> $zip ($(human_mb "${A_MB[$i]}"))"
        fi
        for f in "${todo[@]}"; do
            echo "    unpack $(spec_member "$f") -> $RAW_DIR/$(spec_dest "$f") ($(human_mb "$(spec_mb "$f")"))"
        done
        if [[ ! -f "$zip" ]]; then DRY_DOWNLOAD_MB=$((DRY_DOWNLOAD_MB + A_MB[i])); fi
        DRY_UNPACK_MB=$((DRY_UNPACK_MB + need_mb))
        return 0
    fi

    mkdir -p "$DOWNLOADS"
    if [[ ! -f "$zip" ]]; then
        zip_mb="${A_MB[$i]}"
        part_bytes=0
        if [[ -f "$part" ]]; then part_bytes=$(file_bytes "$part"); fi
        part_mb=$(bytes_to_mb "$part_bytes")
        if [[ $part_mb -gt $zip_mb ]]; then part_mb=$zip_mb; fi
        check_space "$name" $((zip_mb - part_mb + need_mb)) \
            "$(human_mb $((zip_mb - part_mb))) left to download + $(human_mb "$need_mb") unpacked"
        if [[ $part_bytes -gt 0 ]]; then
            echo "$name: resuming the download ($(human_bytes "$part_bytes") already here) from $url"
        else
            echo "$name: downloading $url ($(human_mb "$zip_mb"))"
        fi
        if ! fetch "$url" "$part"; then
            # a run stopped between the end of a download and its rename leaves a complete .part,
            # which the server then refuses to resume: a readable zip is a finished download
            unzip -Z1 "$part" >/dev/null 2>&1 ||
                die "download of $url failed; run the same command again to resume it"
        fi
        mv -f "$part" "$zip"
    else
        check_space "$name" "$need_mb" "$(human_mb "$need_mb") unpacked"
    fi
    unzip -Z1 "$zip" >/dev/null 2>&1 ||
        die "$zip is not a readable zip file (damaged, or an error page?); delete it and run again"

    stage="$DOWNLOADS/$name.unpack"
    rm -rf "$stage"
    mkdir -p "$stage"
    for f in "${todo[@]}"; do
        member=$(spec_member "$f")
        dest=$(spec_dest "$f")
        entry=$(zip_entry "$zip" "$member")
        echo "$name: unpacking $entry -> $RAW_DIR/$dest"
        unzip -q -o "$zip" "$entry" -d "$stage" || die "unzip of $entry from $zip failed"
        mkdir -p "$(dirname "$RAW_DIR/$dest")"
        mv -f "$stage/$entry" "$RAW_DIR/$dest"
    done
    rm -rf "$stage"

    # the marker: every file of this archive with its size, for the next run's checks
    {
        for f in ${A_FILES[$i]}; do
            dest=$(spec_dest "$f")
            if [[ -f "$RAW_DIR/$dest" ]]; then
                printf '%s\t%s\n' "$dest" "$(file_bytes "$RAW_DIR/$dest")"
            fi
        done
    } >"$DOWNLOADS/$name.done.tmp"
    mv -f "$DOWNLOADS/$name.done.tmp" "$DOWNLOADS/$name.done"

    if [[ $KEEP_ZIPS -eq 0 ]]; then
        rm -f "$zip"
        echo "$name: unpacked; zip deleted (--keep-zips keeps it)"
    else
        echo "$name: unpacked; zip kept at $zip"
    fi
}

# plain file $1 (an index of the F_ table): fetched to RAW/NAME.part, resumable, renamed when whole
do_file() {
    local i="$1" url="${F_URL[$1]}" name dest part first
    name="${url##*/}"
    dest="$RAW_DIR/$name"
    part="$DOWNLOADS/$name.part"
    if [[ -f "$dest" ]]; then
        echo "$name: in place, nothing to fetch"
        return 0
    fi
    if [[ $DRY_RUN -eq 1 ]]; then
        echo "$name: would download $url"
        echo "    -> $dest ($(human_mb "${F_MB[$i]}"))"
        DRY_DOWNLOAD_MB=$((DRY_DOWNLOAD_MB + F_MB[i]))
        return 0
    fi
    mkdir -p "$DOWNLOADS"
    check_space "$name" "${F_MB[$i]}" "$(human_mb "${F_MB[$i]}") to download"
    echo "$name: downloading $url ($(human_mb "${F_MB[$i]}"))"
    fetch "$url" "$part" || die "download of $url failed; run the same command again to resume it"
    # VQA-CP's files are bare JSON lists: anything else is an error page, not the file
    first=$(head -c 64 "$part" | tr -d ' \t\r\n' | head -c 1)
    if [[ "$first" != "[" ]]; then
        rm -f "$part"
        die "$url did not return a JSON list (an error page? the address may have moved; set BUTD_VQACP_URL to a mirror)"
    fi
    mv -f "$part" "$dest"
    echo "$name: in place"
}

summary() {
    local g i f dest name state
    echo
    echo "raw files under $RAW_DIR:"
    for g in "${GROUPS_TO_DO[@]}"; do
        echo "  $g:"
        for i in "${!A_GROUP[@]}"; do
            [[ "${A_GROUP[$i]}" == "$g" ]] || continue
            name="${A_URL[$i]##*/}"
            for f in ${A_FILES[$i]}; do
                dest=$(spec_dest "$f")
                if file_present "$name" "$dest"; then
                    state="present  $(human_bytes "$(file_bytes "$RAW_DIR/$dest")")"
                else
                    state="MISSING"
                fi
                printf '    %-18s %s\n' "$state" "$dest"
            done
            if [[ -f "$DOWNLOADS/$name" ]]; then
                printf '    %-18s %s\n' "zip kept" "downloads/$name"
            fi
        done
        for i in "${!F_GROUP[@]}"; do
            [[ "${F_GROUP[$i]}" == "$g" ]] || continue
            name="${F_URL[$i]##*/}"
            if [[ -f "$RAW_DIR/$name" ]]; then
                state="present  $(human_bytes "$(file_bytes "$RAW_DIR/$name")")"
            else
                state="MISSING"
            fi
            printf '    %-18s %s\n' "$state" "$name"
        done
    done
}

DRY_DOWNLOAD_MB=0
DRY_UNPACK_MB=0
if [[ $DRY_RUN -eq 1 ]]; then
    echo "dry run: nothing is downloaded or written; raw dir $RAW_DIR"
fi
for g in "${GROUPS_TO_DO[@]}"; do
    for i in "${!A_GROUP[@]}"; do
        if [[ "${A_GROUP[$i]}" == "$g" ]]; then do_archive "$i"; fi
    done
    for i in "${!F_GROUP[@]}"; do
        if [[ "${F_GROUP[$i]}" == "$g" ]]; then do_file "$i"; fi
    done
done
summary
if [[ $DRY_RUN -eq 1 ]]; then
    echo
    echo "dry run: would download $(human_mb "$DRY_DOWNLOAD_MB") and unpack $(human_mb "$DRY_UNPACK_MB");"
    echo "free disk space under $RAW_DIR now: $(human_mb "$(free_mb "$RAW_DIR")")"
fi
