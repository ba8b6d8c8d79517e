// The MPI binding: collectives on Float32Arrays, run in order by one communication thread so that
// gradient buckets reduce while backward goes on. No kernels here; the JS side (lib/distributed)
// checks arguments and shapes the API.
//
// Open MPI loads its components with dlopen, and they expect libmpi's symbols to be global: the
// addon is dlopen'ed RTLD_LOCAL by Node, so init() re-opens libmpi RTLD_GLOBAL first (as mpi4py).
#include <dlfcn.h>
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>
#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace {

enum Kind { ALLREDUCE, BROADCAST, ALLGATHER, BARRIER };

struct Job {
  Kind kind;
  float* data = nullptr;  // in place (allreduce, broadcast) or the send buffer (allgather)
  float* out = nullptr;   // allgather: world_size * count floats
  int64_t count = 0;
  MPI_Op op = MPI_SUM;
  int root = 0;
  bool check = false;  // first agree on count across ranks (a mismatch is an error, not a hang)
  bool done = false;
  std::string error;
};

// Every collective after init runs on this thread, in submission order (MPI_THREAD_SERIALIZED):
// all ranks submit the same sequence, so the sequences match.
class Communicator {
 public:
  int rank = 0, size = 1;

  void start() {
    worker_ = std::thread([this] { loop(); });
  }

  int64_t submit(std::shared_ptr<Job> job) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t id = next_id_++;
    jobs_[id] = job;
    queue_.push_back(job);
    wake_.notify_one();
    return id;
  }

  // Runs job on the calling thread once the queue is drained (a blocking collective: no hand-off
  // to the worker and back, ~15 us less per call); returns its error.
  std::string run_inline(Job& job) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, [&] { return queue_.empty() && !busy_; });
      busy_ = true;
    }
    std::string error = run(job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
    }
    finished_.notify_all();
    return error;
  }

  // Blocks until job id has run; returns its error ("" when it succeeded).
  std::string wait(int64_t id) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return "no such collective (already waited for?)";
    auto job = it->second;
    finished_.wait(lock, [&] { return job->done; });
    jobs_.erase(it);
    return job->error;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      wake_.notify_one();
    }
    if (worker_.joinable()) worker_.join();
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
        busy_ = true;
      }
      job->error = run(*job);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        job->done = true;
        busy_ = false;
      }
      finished_.notify_all();
    }
  }

  std::string run(Job& job) {
    if (job.check) {
      // the largest count and the largest negated count: equal magnitudes iff every rank agrees
      int64_t mine[2] = {job.count, -job.count}, all[2];
      if (MPI_Allreduce(mine, all, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) return "MPI_Allreduce failed";
      if (all[0] != -all[1])
        return "the ranks passed arrays of different lengths (from " + std::to_string(-all[1]) + " to " + std::to_string(all[0]) +
               " elements; this rank " + std::to_string(job.count) + ")";
    }
    int rc = MPI_SUCCESS;
    // MPI counts are int: large arrays go in chunks
    const int64_t chunk = int64_t(1) << 30;
    switch (job.kind) {
      case ALLREDUCE:
        for (int64_t at = 0; at < job.count && rc == MPI_SUCCESS; at += chunk)
          rc = MPI_Allreduce(MPI_IN_PLACE, job.data + at, int(std::min(chunk, job.count - at)), MPI_FLOAT, job.op, MPI_COMM_WORLD);
        break;
      case BROADCAST:
        for (int64_t at = 0; at < job.count && rc == MPI_SUCCESS; at += chunk)
          rc = MPI_Bcast(job.data + at, int(std::min(chunk, job.count - at)), MPI_FLOAT, job.root, MPI_COMM_WORLD);
        break;
      case ALLGATHER:
        if (job.count > INT32_MAX) return "allGather: more than 2^31 elements per rank";
        rc = MPI_Allgather(job.data, int(job.count), MPI_FLOAT, job.out, int(job.count), MPI_FLOAT, MPI_COMM_WORLD);
        break;
      case BARRIER:
        rc = MPI_Barrier(MPI_COMM_WORLD);
        break;
    }
    if (rc != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING];
      int length = 0;
      MPI_Error_string(rc, text, &length);
      return std::string(text, length);
    }
    return "";
  }

  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::unordered_map<int64_t, std::shared_ptr<Job>> jobs_;
  int64_t next_id_ = 1;
  bool stopping_ = false;
  bool busy_ = false;  // a job is in MPI (on the worker or inline)
};

Communicator* comm = nullptr;
// the arrays of collectives in flight, kept from the garbage collector until waited for
std::unordered_map<int64_t, std::vector<Napi::Reference<Napi::Value>>> held;

Communicator& active(const Napi::Env& env) {
  if (!comm) throw Napi::Error::New(env, "distributed: not initialized (call distributed.init() first)");
  return *comm;
}

float* floats(const Napi::Env& env, const Napi::Value& v, const char* name, int64_t* count) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string("distributed: expected ") + name + " to be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  *count = int64_t(a.ElementLength());
  return a.Data();
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (comm) throw Napi::Error::New(env, "distributed: already initialized");
  if (!dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
    throw Napi::Error::New(env, std::string("distributed: cannot make libmpi's symbols global: ") + dlerror());
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    throw Napi::Error::New(env, "distributed: MPI_Init_thread failed");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw Napi::Error::New(env, "distributed: this MPI cannot be called from a communication thread (MPI_THREAD_SERIALIZED)");
  }
  comm = new Communicator();
  MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
  comm->start();
  auto out = Napi::Object::New(env);
  out.Set("rank", comm->rank);
  out.Set("worldSize", comm->size);
  return out;
}

MPI_Op parse_op(const Napi::Env& env, const std::string& op) {
  if (op == "sum") return MPI_SUM;
  if (op == "max") return MPI_MAX;
  if (op == "min") return MPI_MIN;
  throw Napi::RangeError::New(env, "distributed: expected op to be 'sum', 'max' or 'min' but received '" + op + "'");
}

// The job info describes: (kind, data, options: { op, root, out, check }); refs keep its arrays alive.
std::shared_ptr<Job> make_job(const Napi::CallbackInfo& info, Communicator& c, std::vector<Napi::Reference<Napi::Value>>& refs) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<Job>();
  const std::string kind = info[0].As<Napi::String>();
  auto options = info[2].As<Napi::Object>();
  if (kind != "barrier") {
    job->data = floats(env, info[1], "data", &job->count);
    refs.push_back(Napi::Persistent(info[1]));
  }
  job->check = options.Get("check").ToBoolean();
  if (kind == "allreduce") {
    job->kind = ALLREDUCE;
    job->op = parse_op(env, options.Get("op").As<Napi::String>());
  } else if (kind == "broadcast") {
    job->kind = BROADCAST;
    job->root = options.Get("root").As<Napi::Number>().Int32Value();
    if (job->root < 0 || job->root >= c.size)
      throw Napi::RangeError::New(env, "distributed: expected src to be a rank in [0, " + std::to_string(c.size) + ") but received " + std::to_string(job->root));
  } else if (kind == "allgather") {
    job->kind = ALLGATHER;
    int64_t n = 0;
    job->out = floats(env, options.Get("out"), "out", &n);
    if (n != job->count * c.size) throw Napi::RangeError::New(env, "distributed: allGather's output must hold worldSize x count floats");
    refs.push_back(Napi::Persistent(options.Get("out")));
  } else if (kind == "barrier") {
    job->kind = BARRIER;
  } else {
    throw Napi::TypeError::New(env, "distributed: unknown collective " + kind);
  }
  return job;
}

// submit(kind, data, options) -> id: queued for the communication thread
Napi::Value Submit(const Napi::CallbackInfo& info) {
  auto& c = active(info.Env());
  std::vector<Napi::Reference<Napi::Value>> refs;
  auto job = make_job(info, c, refs);
  const int64_t id = c.submit(job);
  held[id] = std::move(refs);
  return Napi::Number::New(info.Env(), double(id));
}

// run(kind, data, options): blocking, on this thread, after what is queued
Napi::Value Run(const Napi::CallbackInfo& info) {
  auto& c = active(info.Env());
  std::vector<Napi::Reference<Napi::Value>> refs;
  auto job = make_job(info, c, refs);
  const std::string error = c.run_inline(*job);
  if (!error.empty()) throw Napi::Error::New(info.Env(), "distributed: " + error);
  return info.Env().Undefined();
}

Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& c = active(env);
  const int64_t id = int64_t(info[0].As<Napi::Number>().Int64Value());
  const std::string error = c.wait(id);
  held.erase(id);
  if (!error.empty()) throw Napi::Error::New(env, "distributed: " + error);
  return env.Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (!comm) return info.Env().Undefined();
  comm->stop();
  MPI_Finalize();
  delete comm;
  comm = nullptr;
  held.clear();
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("submit", Napi::Function::New(env, Submit));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  exports.Set("mpiVersion", std::to_string(major) + "." + std::to_string(minor));
  return exports;
}

}  // namespace

NODE_API_MODULE(stablegrad_mpi, Module)
