# Sourced by the scripts: point DIGITREC_DATA at the shared MNIST copy beside the checkout when it is not set.
if [ -z "${DIGITREC_DATA:-}" ] && [ -d "$(dirname "${BASH_SOURCE[0]}")/../../shared/data/mnist" ]; then
    DIGITREC_DATA="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../shared/data/mnist" && pwd)"
    export DIGITREC_DATA
fi
