# .ci/jobs.sh, sourced by .ci/run: background jobs whose exit status survives PID reuse.
#
# Bash forgets a finished background job's status as soon as a later child of the shell gets
# the same PID, and `wait PID` then fails with 127 ("not a child of this shell") as if the job
# had failed. A CI run starts far more processes than pid_max (32768 here), so PIDs do come
# round. Each job therefore writes its own status to a file, which is what the caller reads.
#
#   start_job NAME COMMAND...   run COMMAND in the background (redirect the call's output)
#   job_done NAME               true once the job has finished, either way
#   finish_job NAME             wait for the job; return its exit status

JOBS_DIR=build/jobs

start_job() {
  local name=$1
  shift
  mkdir -p "$JOBS_DIR"
  rm -f "$JOBS_DIR/$name.status" "$JOBS_DIR/$name.status.tmp"
  # The status is written whole and then renamed, so a reader never sees half of it.
  ( set +e; "$@"; echo $? >"$JOBS_DIR/$name.status.tmp"
    mv "$JOBS_DIR/$name.status.tmp" "$JOBS_DIR/$name.status" ) &
  echo $! >"$JOBS_DIR/$name.pid"
}

job_done() {
  [ -f "$JOBS_DIR/$1.status" ]
}

finish_job() {
  local name=$1 pid
  pid=$(cat "$JOBS_DIR/$name.pid")
  while ! job_done "$name"; do
    # A job killed before it could write its status: the PID is gone (or, reused, not ours).
    if ! kill -0 "$pid" 2>/dev/null; then
      sleep 1
      job_done "$name" || { echo "job $name ended without a status" >&2; return 1; }
    fi
    sleep 1
  done
  wait "$pid" 2>/dev/null || true  # reaps it if bash still knows it; its status is the file's
  return "$(cat "$JOBS_DIR/$name.status")"
}
