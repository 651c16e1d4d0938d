// learned: a trained table of max_positions rows added to the token embeddings; it cannot run
// past its table.
#include "core/error.h"
#include "position/position.h"

namespace alibi {
namespace {

class Learned final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::learned; }
  bool keys_hold_position() const override { return true; }
  void add_fields(Fields<ModelConfig>& rows) const override {
    rows.push_back(Field<ModelConfig>::of(ALIBI_MEMBER(ModelConfig, max_positions), "max_positions")
                       .flag_help("--max-positions", "learned: table size (0: --seq-len)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if([](const ModelConfig& c) { return c.pos == PosKind::learned; }));
  }
  void fill_defaults(ModelConfig& c, int seq_len) const override {
    if (c.max_positions == 0) c.max_positions = seq_len;
  }
  void validate(const ModelConfig& c) const override {
    if (c.max_positions < 1)
      usage_error("--pos learned needs a positive table size, got ", c.max_positions);
  }
  void add_params(const ModelConfig& c, ParamLayout& l) const override {
    l.add("wpe", {c.max_positions, c.d_model}, embedding_init(c), true);
  }
  int64_t max_positions(const ModelConfig& c) const override { return c.max_positions; }

  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    C_ = c.d_model;
    wpe_ = l.at("wpe").offset;
    PositionMethod::bind(c, l, std::move(be));
  }
  void embed_forward(float* x, int B, int T, int64_t pos0, const ParamSet& p) const override {
    be().posemb_forward(x, p.data.data() + wpe_, B, T, C_, pos0);
  }
  void embed_backward(const float* dx, int B, int T, int64_t pos0, ParamSet& g) const override {
    be().posemb_backward(g.data.data() + wpe_, dx, B, T, C_, pos0);
  }

 private:
  int C_ = 0;
  size_t wpe_ = 0;  // offset of wpe (max_positions, C)
};

}  // namespace

std::unique_ptr<PositionMethod> make_learned() { return std::make_unique<Learned>(); }

}  // namespace alibi
