//! The model file (safetensors: int8 weights, i32 multipliers, config and tokenizer in metadata)
//! and its id. The forward pass lives in the backends; `arith` holds the shared integer primitives.

pub mod adapt;
pub mod arith;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

/// The default model, trained by `train/train.py` and shipped inside the binary.
pub static DEFAULT_MODEL: &[u8] = BUILT_IN[0].bytes;

/// A model file inside the binary, with its id and shape written out (hashing 1.5 MB at every
/// start would cost more than the fast levels' whole run on a small file, and parsing the 130 KB
/// header, the tokenizer's text included, 1.5 ms of every run; a test checks both).
pub struct BuiltIn {
    /// first 16 bytes of the SHA-256 of the file
    pub id: [u8; 16],
    /// the file's `nnz.config` metadata (JSON)
    pub config: &'static str,
    /// the model file
    pub bytes: &'static [u8],
}

/// Every model that shipped as nnz's default, the default first. Archives name their model by
/// id, and users' archives must decode forever: an entry is never removed, and a new default goes
/// in front of the old ones (`models/`, README "Golden archives").
pub static BUILT_IN: &[BuiltIn] = &[
    BuiltIn {
        id: [
            0x70, 0xbf, 0xa4, 0xff, 0xbf, 0xf7, 0x01, 0x2e, 0x09, 0xcf, 0xb7, 0x7d, 0x5a, 0x76, 0x2e, 0x4d,
        ],
        config: "{\"d_ff\": 512, \"d_model\": 128, \"head_dim\": 32, \"n_heads\": 4, \"n_kv_heads\": 1, \"n_layers\": 2, \"vocab\": 4096, \"window\": 512}",
        bytes: include_bytes!("../../models/default.safetensors"),
    },
    // the default after f9efec63, until 70bfa4ff (train/RESULTS.md)
    BuiltIn {
        id: [
            0x2e, 0x7c, 0x35, 0xde, 0x80, 0x7c, 0x36, 0x47, 0x4a, 0x40, 0x74, 0x26, 0xea, 0xa0, 0x55, 0x4a,
        ],
        config: "{\"d_ff\": 512, \"d_model\": 128, \"head_dim\": 32, \"n_heads\": 4, \"n_kv_heads\": 1, \"n_layers\": 2, \"vocab\": 4096, \"window\": 512}",
        bytes: include_bytes!("../../models/2e7c35de.safetensors"),
    },
    // the default after 35c12cd8, until 2e7c35de (format 12; train/RESULTS.md)
    BuiltIn {
        id: [
            0xf9, 0xef, 0xec, 0x63, 0x62, 0x12, 0xdb, 0x17, 0x07, 0x54, 0x53, 0x3c, 0xd7, 0xad, 0x95, 0xb5,
        ],
        config: "{\"d_ff\": 512, \"d_model\": 128, \"head_dim\": 32, \"n_heads\": 4, \"n_kv_heads\": 1, \"n_layers\": 2, \"vocab\": 4096, \"window\": 512}",
        bytes: include_bytes!("../../models/f9efec63.safetensors"),
    },
    // the default of formats 1 to 12 (train/RESULTS.md)
    BuiltIn {
        id: [
            0x35, 0xc1, 0x2c, 0xd8, 0x5b, 0xb8, 0xae, 0xcd, 0xd7, 0x84, 0x59, 0x6e, 0x13, 0x0b, 0x30, 0xba,
        ],
        config: "{\"d_ff\": 512, \"d_model\": 128, \"head_dim\": 32, \"n_heads\": 4, \"n_kv_heads\": 1, \"n_layers\": 2, \"vocab\": 4096, \"window\": 512}",
        bytes: include_bytes!("../../models/35c12cd8.safetensors"),
    },
];

/// The built-in model with this id, if any.
pub fn built_in(id: &[u8; 16]) -> Option<&'static BuiltIn> {
    BUILT_IN.iter().find(|b| &b.id == id)
}

/// The model's shape (docs/MODEL.md, "The model file").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// tokens in the vocabulary, the BOS token (the last) included
    pub vocab: usize,
    /// width of the residual stream
    pub d_model: usize,
    /// transformer layers
    pub n_layers: usize,
    /// query heads
    pub n_heads: usize,
    /// key/value heads (grouped-query attention: each serves n_heads / n_kv_heads query heads)
    pub n_kv_heads: usize,
    /// width of one head
    pub head_dim: usize,
    /// hidden width of the feed-forward block
    pub d_ff: usize,
    /// tokens a position attends to, itself included
    pub window: usize,
}

impl Config {
    /// The token every chunk starts from: the last id.
    pub fn bos(&self) -> u32 {
        (self.vocab - 1) as u32
    }
    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The shape a model file's `nnz.config` metadata declares, checked.
    fn from_json(json: &str) -> Result<Config> {
        let c: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(format!("nnz.config: {e}")))?;
        let field = |k: &str, max: u64| -> Result<usize> {
            let v = c
                .get(k)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| bad(format!("nnz.config.{k} missing")))?;
            if v == 0 || v > max {
                return Err(bad(format!("nnz.config.{k} = {v} is outside 1..={max}")));
            }
            Ok(v as usize)
        };
        let cfg = Config {
            vocab: field("vocab", 1 << 17)?,
            d_model: field("d_model", 8192)?,
            n_layers: field("n_layers", 64)?,
            n_heads: field("n_heads", 64)?,
            n_kv_heads: field("n_kv_heads", 64)?,
            head_dim: field("head_dim", 256)?,
            d_ff: field("d_ff", 32768)?,
            window: field("window", 4096)?,
        };
        if !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) || cfg.vocab < 258 {
            return Err(bad("n_heads must be a multiple of n_kv_heads, and vocab >= 258"));
        }
        Ok(cfg)
    }
}

/// An int8 weight matrix `[n_out][n_in]` with one requantization multiplier per output row.
pub struct Linear {
    /// inputs per row
    pub n_in: usize,
    /// rows
    pub n_out: usize,
    /// the weights, row by row
    pub w: Vec<i8>,
    /// one multiplier per row (requantization, docs/MODEL.md)
    pub m: Vec<i32>,
}

impl Linear {
    /// The weights of output row `o`.
    pub fn row(&self, o: usize) -> &[i8] {
        &self.w[o * self.n_in..(o + 1) * self.n_in]
    }
}

/// One transformer layer's weights.
pub struct Layer {
    /// queries
    pub wq: Linear,
    /// keys
    pub wk: Linear,
    /// values
    pub wv: Linear,
    /// per head: attention score multiplier
    pub qk_m: Vec<i32>,
    /// `[n_heads][window]`: bias by distance, in attention-logit units
    pub bias: Vec<i32>,
    /// attention output
    pub wo: Linear,
    /// feed-forward, in
    pub w1: Linear,
    /// feed-forward, out
    pub w2: Linear,
}

/// A loaded model file: the built-in default ([`Model::default_model`]) or any other file made by
/// `train/export.py` ([`Model::from_bytes`]). An archive records the id of the model it was made
/// with; only that model decodes it.
pub struct Model {
    /// the shape
    pub cfg: Config,
    /// token embeddings (one row per token)
    pub emb: Linear,
    /// the transformer layers
    pub layers: Vec<Layer>,
    /// output projection to one logit per token
    pub head: Linear,
    /// the GELU lookup table
    pub gelu: Vec<i8>,
    /// exponent table of the attention softmax
    pub exp_attn: Vec<i32>,
    /// exponent table of the output softmax (frequency tables)
    pub exp_out: Vec<i32>,
    /// the byte-level BPE tokenizer
    pub tokenizer: Tokenizer,
    /// first 16 bytes of the SHA-256 of the model file
    pub id: [u8; 16],
    /// size of the model file in bytes (about what the loaded model holds in memory)
    pub file_len: u64,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadModel(msg.into())
}

struct Reader<'a> {
    st: SafeTensors<'a>,
}

impl<'a> Reader<'a> {
    fn raw(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8]> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            return Err(bad(format!(
                "tensor {name}: expected {dtype:?} {shape:?}, found {:?} {:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data())
    }
    fn i8s(&self, name: &str, shape: &[usize]) -> Result<Vec<i8>> {
        Ok(self.raw(name, Dtype::I8, shape)?.iter().map(|&b| b as i8).collect())
    }
    fn i32s(&self, name: &str, shape: &[usize]) -> Result<Vec<i32>> {
        let raw = self.raw(name, Dtype::I32, shape)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn multipliers(&self, name: &str, n: usize) -> Result<Vec<i32>> {
        let m = self.i32s(name, &[n])?;
        if m.iter().any(|&v| v < 1) {
            return Err(bad(format!("tensor {name}: multipliers must be >= 1")));
        }
        Ok(m)
    }
    fn linear(&self, prefix: &str, n_out: usize, n_in: usize) -> Result<Linear> {
        let w = self.i8s(&format!("{prefix}.w"), &[n_out, n_in])?;
        if w.contains(&-128) {
            return Err(bad(format!(
                "tensor {prefix}.w holds -128 (weights are in [-127, 127])"
            )));
        }
        Ok(Linear {
            n_in,
            n_out,
            w,
            m: self.multipliers(&format!("{prefix}.m"), n_out)?,
        })
    }
}

fn check_exp_table(name: &str, t: &[i32], one: i32) -> Result<()> {
    let ok = t.len() >= 2
        && t[0] > 0
        && t[0] <= one
        && *t.last().unwrap() == 0
        && t.windows(2).all(|w| w[1] <= w[0] && w[1] >= 0);
    if ok {
        Ok(())
    } else {
        Err(bad(format!("{name} must be non-increasing from (0, {one}] to 0")))
    }
}

/// What an archive and the memory planner need of a model: its shape, id and file size, read from
/// the file's header without loading the weights or the tokenizer ([`Model::info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// the shape
    pub cfg: Config,
    /// first 16 bytes of the SHA-256 of the model file
    pub id: [u8; 16],
    /// size of the model file in bytes
    pub file_len: u64,
}

impl ModelInfo {
    /// Memory the loaded model holds, about: its weights and tables, and the tokenizer's maps.
    pub fn weight_bytes(&self) -> u64 {
        2 * self.file_len
    }
}

impl Model {
    /// Memory the loaded model holds, about: its weights and tables, and the tokenizer's maps.
    pub fn weight_bytes(&self) -> u64 {
        self.summary().weight_bytes()
    }

    /// The loaded model's shape, id and file size.
    pub fn summary(&self) -> ModelInfo {
        ModelInfo {
            cfg: self.cfg.clone(),
            id: self.id,
            file_len: self.file_len,
        }
    }

    /// The model built into this nnz (the one archives are made with by default).
    pub fn default_model() -> Result<Model> {
        Model::from_bytes(DEFAULT_MODEL)
    }

    /// A model file's shape, id and size, from its header alone (no weights are read): what an
    /// archive and the memory planner need, known without loading the model.
    pub fn info(bytes: &[u8]) -> Result<ModelInfo> {
        Ok(ModelInfo {
            cfg: Model::config(bytes)?,
            id: Sha256::digest(bytes)[..16].try_into().unwrap(),
            file_len: bytes.len() as u64,
        })
    }

    /// The shape a model file's header declares, checked.
    fn config(bytes: &[u8]) -> Result<Config> {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(format!("metadata key {k} missing")));
        if get("nnz.format")? != "nnz-model" {
            return Err(bad("not an nnz model (nnz.format)"));
        }
        let arith: u32 = get("nnz.arith")?
            .parse()
            .map_err(|_| bad("nnz.arith is not a number"))?;
        if arith != arith::ARITH_VERSION {
            return Err(bad(format!(
                "model uses integer arithmetic version {arith}; this nnz implements version {}",
                arith::ARITH_VERSION
            )));
        }
        Config::from_json(get("nnz.config")?)
    }

    /// Load a model file (safetensors) from its bytes, checking every tensor's shape and range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let ModelInfo { cfg, id, file_len } = Model::info(bytes)?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(format!("metadata key {k} missing")));
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let r = Reader { st };
        let (v, d, h) = (cfg.vocab, cfg.d_model, cfg.n_heads);
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let p = format!("layers.{l}.");
            layers.push(Layer {
                wq: r.linear(&format!("{p}attn.wq"), cfg.q_dim(), d)?,
                wk: r.linear(&format!("{p}attn.wk"), cfg.kv_dim(), d)?,
                wv: r.linear(&format!("{p}attn.wv"), cfg.kv_dim(), d)?,
                qk_m: r.multipliers(&format!("{p}attn.qk.m"), h)?,
                bias: {
                    let b = r.i32s(&format!("{p}attn.bias"), &[h, cfg.window])?;
                    if b.iter().any(|x| x.unsigned_abs() > 1 << 24) {
                        return Err(bad("attention bias outside [-2^24, 2^24]"));
                    }
                    b
                },
                wo: r.linear(&format!("{p}attn.wo"), d, cfg.q_dim())?,
                w1: r.linear(&format!("{p}mlp.w1"), cfg.d_ff, d)?,
                w2: r.linear(&format!("{p}mlp.w2"), d, cfg.d_ff)?,
            });
        }
        let gelu = r.i8s("lut.gelu", &[2 * arith::GELU_HALF as usize])?;
        let n_attn =
            r.st.tensor("lut.exp_attn")
                .map(|t| t.shape().first().copied().unwrap_or(0))
                .unwrap_or(0);
        let exp_attn = r.i32s("lut.exp_attn", &[n_attn])?;
        check_exp_table("lut.exp_attn", &exp_attn, 1 << 12)?;
        let n_out =
            r.st.tensor("lut.exp_out")
                .map(|t| t.shape().first().copied().unwrap_or(0))
                .unwrap_or(0);
        let exp_out = r.i32s("lut.exp_out", &[n_out])?;
        check_exp_table("lut.exp_out", &exp_out, 1 << 20)?;
        let tokenizer = Tokenizer::from_json(get("nnz.tokenizer")?)?;
        if tokenizer.vocab_size() != v - 1 {
            return Err(bad(format!(
                "tokenizer has {} tokens; the model expects {}",
                tokenizer.vocab_size(),
                v - 1
            )));
        }
        Ok(Model {
            emb: r.linear("tok_emb", v, d)?,
            head: r.linear("head", v, d)?,
            layers,
            gelu,
            exp_attn,
            exp_out,
            tokenizer,
            id,
            cfg,
            file_len,
        })
    }

    /// The id in hex, as `-v` and error messages show it.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

impl BuiltIn {
    /// What [`Model::info`] says of this file, from its header and the id written out.
    pub fn info(&self) -> Result<ModelInfo> {
        Ok(ModelInfo {
            cfg: Config::from_json(self.config)?,
            id: self.id,
            file_len: self.bytes.len() as u64,
        })
    }
}

/// Bytes in lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::backend::Backend;

    #[test]
    fn built_in_ids_are_the_files() {
        for (i, b) in BUILT_IN.iter().enumerate() {
            let info = Model::info(b.bytes).unwrap();
            assert_eq!(
                info,
                b.info().unwrap(),
                "update BUILT_IN[{i}]: id {}, config {:?} (its header's nnz.config)",
                hex(&info.id),
                info.cfg
            );
            assert!(
                std::ptr::eq(built_in(&b.id).unwrap(), b),
                "model {i}'s id is not unique"
            );
            Model::from_bytes(b.bytes).unwrap();
        }
    }

    #[test]
    fn built_in_model_loads_when_first_needed() {
        let b = CpuBackend::built_in().unwrap();
        let info = b.model_info();
        assert_eq!(b.model().summary(), info);
        assert_eq!(info.file_len, DEFAULT_MODEL.len() as u64);
    }
}
