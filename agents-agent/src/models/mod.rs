//! Model lifecycle: verified resumable downloads into `$COWORK_HOME/models`
//! (`download` rules, `fetch` I/O, `manager` tasks, `store` records), GGUF
//! metadata (`gguf`, read from a file, a URL or Ollama by `source`), the
//! fit estimate and verdict (`fit`, pure) on the machine `hardware`
//! detects, the whole check from a source (`check`), loading a model as a
//! llama-server session after its check (`load`), and the gRPC adapter
//! (`service`).

pub mod check;
pub mod download;
pub mod fetch;
pub mod fit;
pub mod gguf;
pub mod hardware;
pub mod load;
pub mod manager;
pub mod service;
pub mod source;
pub mod store;
