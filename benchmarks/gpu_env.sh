# Sourced by the GPU scripts (gpu_check.sh, gpu_scaling.sh) from the repository root. On an offline
# machine (a lent GPU), WHEELS names a folder of wheels: they are installed into /tmp/site, the
# project runs from this tree with envs/ linked in as lewm_agent.envs (what the install's
# package-dir does; the link goes at exit), and PYTHONPATH points at both.
if [ -n "${WHEELS:-}" ]; then
  ${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || { echo "installing the wheels of $WHEELS failed"; exit 1; }
  if [ ! -e lewm_agent/envs ]; then ln -s ../envs lewm_agent/envs && trap 'rm -f lewm_agent/envs' EXIT; fi
  export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
