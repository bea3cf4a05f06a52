# Sourced by run.sh and test.sh: a virtual environment in .venv, installed from a
# requirements file and reinstalled only when that file changes.
ensure_venv() {
  local req="$1" py
  py=$(command -v python3.11 || command -v python3)
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "gridcc needs Python 3.11 or newer; found $("$py" --version)" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  local stamp=".venv/.installed-$(basename "$req")"
  local want
  want=$(cat "$req" requirements.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
}
