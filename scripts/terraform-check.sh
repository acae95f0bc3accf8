#!/usr/bin/env bash
# Checks the Terraform under terraform/ with terraform itself, offline when the
# machine has the AWS provider in a local plugin directory:
#
#   1. terraform fmt -check -recursive terraform
#   2. for the module and the example: terraform init -backend=false
#      (-plugin-dir=DIR when a local plugin directory exists, else a normal
#      init that downloads the provider), terraform validate, and
#      terraform test (mock_provider "aws": the example's tests plan and apply
#      the whole stack; the module's tests assert its invariants and that bad
#      inputs are refused).
#
# Any failure exits non-zero. Nothing is installed: without terraform on PATH
# this fails (it never skips with a warning).
#
# Settings (environment):
#   TF_PLUGIN_DIR   the plugin directory (the one holding registry.terraform.io/);
#                   default: found once with find(1) and cached in terraform/.plugin-dir
#   TERRAFORM       the terraform command (default: terraform)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TF_ROOT="$ROOT/terraform"
TERRAFORM="${TERRAFORM:-terraform}"
CACHE="$TF_ROOT/.plugin-dir"
DIRS=(modules/fhir-binary-gateway examples/aws)

say() { printf 'terraform-check: %s\n' "$*"; }
die() { printf 'terraform-check: FAIL: %s\n' "$*" >&2; exit 1; }

command -v "$TERRAFORM" >/dev/null 2>&1 || die "terraform is not on PATH (install terraform >= 1.7; this check never skips)"
# A TF_CLI_CONFIG_FILE naming a missing file only adds a warning to every command.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

# plugin_dir_of FILE: the directory above registry.terraform.io/ in FILE's path
# (unpacked: .../registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/terraform-provider-aws_v5.100.0_x5;
# packed: .../registry.terraform.io/hashicorp/aws/terraform-provider-aws_5.100.0_linux_amd64.zip).
plugin_dir_of() {
	case "$1" in
	*/registry.terraform.io/*) printf '%s\n' "${1%%/registry.terraform.io/*}" ;;
	*) return 1 ;;
	esac
}

has_aws() { [ -d "$1/registry.terraform.io/hashicorp/aws" ]; }

plugin_dir="${TF_PLUGIN_DIR:-}"
if [ -n "$plugin_dir" ]; then
	has_aws "$plugin_dir" || die "TF_PLUGIN_DIR=$plugin_dir has no registry.terraform.io/hashicorp/aws"
elif [ -f "$CACHE" ] && has_aws "$(cat "$CACHE")"; then
	plugin_dir="$(cat "$CACHE")"
else
	say "looking for a local AWS provider plugin (find /, once; cached in terraform/.plugin-dir)"
	while IFS= read -r f; do
		if d="$(plugin_dir_of "$f")" && has_aws "$d"; then plugin_dir="$d"; break; fi
	done < <(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o \
		-name 'terraform-provider-aws*' -print 2>/dev/null |
		grep -v -e '/\.terraform/' || true)
	if [ -n "$plugin_dir" ]; then printf '%s\n' "$plugin_dir" >"$CACHE"; fi
fi

# Not `terraform version | head -n1`: head closing the pipe early can kill
# terraform with SIGPIPE, and pipefail then ends this script without a word
# (a soak run beside a second make test did exactly that).
tf_version="$("$TERRAFORM" version)" || die "terraform version failed"
printf '%s\n' "${tf_version%%$'\n'*}"
say "terraform fmt -check -recursive terraform"
"$TERRAFORM" fmt -check -recursive -diff "$TF_ROOT" || die "terraform fmt: files above are not formatted (run make tf-fmt)"

for d in "${DIRS[@]}"; do
	dir="$TF_ROOT/$d"
	[ -d "$dir" ] || die "$d: no such directory"
	if [ -n "$plugin_dir" ]; then
		say "$d: terraform init -backend=false -plugin-dir=$plugin_dir (offline)"
		"$TERRAFORM" -chdir="$dir" init -backend=false -input=false -no-color -plugin-dir="$plugin_dir" >"$dir/.terraform-init.log" 2>&1 ||
			{ cat "$dir/.terraform-init.log" >&2; die "$d: terraform init"; }
	else
		say "$d: no local plugin directory found; terraform init -backend=false (downloads the provider)"
		"$TERRAFORM" -chdir="$dir" init -backend=false -input=false -no-color >"$dir/.terraform-init.log" 2>&1 ||
			{ cat "$dir/.terraform-init.log" >&2; die "$d: terraform init"; }
	fi
	say "$d: terraform validate"
	"$TERRAFORM" -chdir="$dir" validate -no-color || die "$d: terraform validate"
	ls "$dir"/tests/*.tftest.hcl >/dev/null 2>&1 || die "$d: no tests/*.tftest.hcl (terraform test would pass on nothing)"
	say "$d: terraform test"
	"$TERRAFORM" -chdir="$dir" test -no-color || die "$d: terraform test"
done
say "all checks passed"
