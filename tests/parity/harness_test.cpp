#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "parity/parity.h"
#include "sepmech/io/safetensors.h"

using sepmech::parity::compare_tensor;

TEST(ParityCompare, WithinTolerancePassesOutsideFails) {
  auto want = torch::tensor({1.0f, -2.0f, 100.0f});
  auto ok = compare_tensor("out.y", want + torch::tensor({1e-6f, -1e-6f, 1e-3f}), want, {1e-5, 1e-4});
  EXPECT_TRUE(ok.pass) << ok.message;
  EXPECT_LT(ok.worst_ratio, 1.0);
  auto bad = compare_tensor("out.y", want + torch::tensor({0.0f, 0.0f, 0.5f}), want, {1e-5, 1e-4});
  EXPECT_FALSE(bad.pass);
  // |0.5| / (1e-5 + 1e-4 * 100) ~= 49.95
  EXPECT_NEAR(bad.worst_ratio, 0.5 / (1e-5 + 1e-2), 1e-2);
}

// ---------------------------------------------------------------------------------------------
// Hand-made case files (written at test time) through a tiny adapter for a made-up module.
// ---------------------------------------------------------------------------------------------
namespace {

namespace fs = std::filesystem;
using sepmech::parity::CaseReport;

// "sepmech_test_scale": out.y = factor * in.x (config {"factor": f}); grad.in.x when the case
// holds a cotangent in.grad_out.y.
sepmech::parity::RegisterAdapter test_adapter("sepmech_test_scale", [](const sepmech::parity::Case& c) {
  for (auto& [k, v] : c.config.items())
    if (k != "factor") throw sepmech::parity::Unsupported("config key '" + k + "' is not supported");
  double factor = c.config.value("factor", 1.0);
  torch::Tensor x = c.at("in.x").clone().requires_grad_(true);
  torch::Tensor y = x * factor;
  sepmech::parity::Outputs out{{"out.y", y}};
  if (sepmech::parity::backward_with_cotangents(c, {{"y", y}})) out["grad.in.x"] = x.grad();
  return out;
});

class ParityCases : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sepmech_parity_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const sepmech::io::TensorMap& t, sepmech::io::Metadata meta) {
    std::string path = (dir_ / name).string();
    sepmech::io::save_safetensors(path, t, meta);
    return path;
  }
  static sepmech::io::Metadata meta(const std::string& module = "sepmech_test_scale",
                                    const std::string& config = R"({"factor": 2.0})") {
    return {{"module", module}, {"config", config}, {"atol", "1e-6"}, {"rtol", "1e-5"}};
  }
  fs::path dir_;
};

const torch::Tensor kX = torch::tensor({0.5f, -1.0f, 3.0f, 100.0f});

}  // namespace

TEST_F(ParityCases, WithinTolerancePasses) {
  // |error| <= 1e-6 + 1e-5 |want|: 5e-7 absolute on small values, 5e-4 relative-ish on 200.
  auto want = kX * 2 + torch::tensor({5e-7f, -5e-7f, 0.0f, 1e-3f});
  auto rep = sepmech::parity::run_case(write("ok.safetensors", {{"in.x", kX}, {"out.y", want}}, meta()));
  EXPECT_TRUE(rep.pass) << sepmech::parity::to_line(rep);
  EXPECT_TRUE(rep.error.empty()) << rep.error;
  EXPECT_EQ(rep.worst_key, "out.y");
  EXPECT_GT(rep.worst_ratio, 0.1);
  EXPECT_LE(rep.worst_ratio, 1.0);
  EXPECT_EQ(sepmech::parity::to_line(rep).rfind("PASS ", 0), 0u);
}

TEST_F(ParityCases, KnownDifferenceFails) {
  auto want = kX * 2;
  want[2] = want[2].item<float>() + 1e-3f;  // 6.001 instead of 6: ratio ~ 1e-3 / (1e-6 + 6e-5) ~ 16
  auto rep = sepmech::parity::run_case(write("bad.safetensors", {{"in.x", kX}, {"out.y", want}}, meta()));
  EXPECT_FALSE(rep.pass);
  EXPECT_EQ(rep.worst_key, "out.y");
  EXPECT_NEAR(rep.worst_ratio, 1e-3 / (1e-6 + 1e-5 * 6.001), 0.5);
  ASSERT_EQ(rep.tensors.size(), 1u);
  EXPECT_NE(rep.tensors[0].message.find("flat index 2"), std::string::npos) << rep.tensors[0].message;
  EXPECT_NE(rep.tensors[0].message.find("1 of 4 elements"), std::string::npos) << rep.tensors[0].message;
  std::string line = sepmech::parity::to_line(rep);
  EXPECT_EQ(line.rfind("FAIL ", 0), 0u) << line;
  auto j = sepmech::parity::to_json(rep);
  EXPECT_EQ(j["pass"], false);
  EXPECT_EQ(j["worst_key"], "out.y");
  EXPECT_EQ(j["failures"][0]["key"], "out.y");
}

TEST_F(ParityCases, GradientsUseTheirOwnTolerance) {
  auto g = torch::tensor({1.0f, 2.0f, -1.0f, 0.5f});
  sepmech::io::TensorMap t{{"in.x", kX}, {"out.y", kX * 2}, {"in.grad_out.y", g}, {"grad.in.x", g * 2 + 1e-4f}};
  auto m = meta();
  m["grad_atol"] = "1e-3";
  m["grad_rtol"] = "0";
  auto rep = sepmech::parity::run_case(write("grad_ok.safetensors", t, m));
  EXPECT_TRUE(rep.pass) << sepmech::parity::to_line(rep);
  ASSERT_EQ(rep.tensors.size(), 2u);
  // Without grad_* the forward tolerance (1e-6 + 1e-5|want|) applies and 1e-4 is too much.
  auto rep2 = sepmech::parity::run_case(write("grad_bad.safetensors", t, meta()));
  EXPECT_FALSE(rep2.pass);
  EXPECT_EQ(rep2.worst_key, "grad.in.x");
}

TEST_F(ParityCases, ExpectedKeyTheAdapterDoesNotProduceFails) {
  auto rep = sepmech::parity::run_case(
      write("extra.safetensors", {{"in.x", kX}, {"out.y", kX * 2}, {"out.z", kX}}, meta()));
  EXPECT_FALSE(rep.pass);
  EXPECT_EQ(rep.worst_key, "out.z");
  bool found = false;
  for (const auto& t : rep.tensors)
    if (t.key == "out.z") {
      found = true;
      EXPECT_FALSE(t.pass);
      EXPECT_NE(t.message.find("did not produce"), std::string::npos) << t.message;
    }
  EXPECT_TRUE(found);
}

TEST_F(ParityCases, UnknownModuleFailsWithAClearMessage) {
  auto rep = sepmech::parity::run_case(write("unknown.safetensors", {{"in.x", kX}, {"out.y", kX}}, meta("no_such_mechanism")));
  EXPECT_FALSE(rep.pass);
  EXPECT_NE(rep.error.find("module 'no_such_mechanism' is not supported"), std::string::npos) << rep.error;
  EXPECT_NE(rep.error.find("sepmech_test_scale"), std::string::npos) << "should list the known adapters: " << rep.error;
}

TEST_F(ParityCases, UnsupportedConfigFailsNamingIt) {
  auto rep = sepmech::parity::run_case(
      write("cfg.safetensors", {{"in.x", kX}, {"out.y", kX}}, meta("sepmech_test_scale", R"({"factor": 2, "mode": "x"})")));
  EXPECT_FALSE(rep.pass);
  EXPECT_NE(rep.error.find("not supported: config key 'mode'"), std::string::npos) << rep.error;
}

TEST_F(ParityCases, CaseWithoutExpectedTensorsOrModuleFails) {
  auto r1 = sepmech::parity::run_case(write("noout.safetensors", {{"in.x", kX}}, meta()));
  EXPECT_FALSE(r1.pass);
  EXPECT_NE(r1.error.find("no out.* or grad.*"), std::string::npos) << r1.error;
  auto r2 = sepmech::parity::run_case(write("nomodule.safetensors", {{"in.x", kX}, {"out.y", kX}}, {{"atol", "1"}}));
  EXPECT_FALSE(r2.pass);
  EXPECT_NE(r2.error.find("no 'module'"), std::string::npos) << r2.error;
  auto r3 = sepmech::parity::run_case((dir_ / "missing.safetensors").string());
  EXPECT_FALSE(r3.pass);
  EXPECT_NE(r3.error.find("cannot load case"), std::string::npos) << r3.error;
}

TEST_F(ParityCases, ShapeMismatchAndNaN) {
  auto nan = std::numeric_limits<float>::quiet_NaN();
  auto r = compare_tensor("out.y", torch::tensor({1.0f, nan}), torch::tensor({1.0f, nan}), {0.0, 0.0});
  EXPECT_TRUE(r.pass) << r.message;  // NaN where NaN is expected
  auto r2 = compare_tensor("out.y", torch::tensor({1.0f, nan}), torch::tensor({1.0f, 2.0f}), {1.0, 1.0});
  EXPECT_FALSE(r2.pass);
  auto r3 = compare_tensor("out.y", torch::zeros({2, 2}), torch::zeros({4}), {1.0, 1.0});
  EXPECT_FALSE(r3.pass);
  EXPECT_NE(r3.message.find("shape"), std::string::npos) << r3.message;
  // Complex tensors compare through their real view.
  auto c = torch::complex(torch::tensor({1.0f}), torch::tensor({2.0f}));
  EXPECT_FALSE(compare_tensor("out.c", c, torch::complex(torch::tensor({1.0f}), torch::tensor({2.5f})), {0.1, 0.0}).pass);
  EXPECT_TRUE(compare_tensor("out.c", c, c.clone(), {0.0, 0.0}).pass);
}

TEST(ParityCompare, ExpectedInfinityPassesOnlyForTheSameInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  auto want = torch::tensor({3.0, static_cast<double>(inf)}, torch::kFloat64);
  EXPECT_TRUE(compare_tensor("out.si_sdr", want.clone(), want, {0.002, 0.0}).pass);
  auto neg = compare_tensor("out.si_sdr", torch::tensor({3.0, -static_cast<double>(inf)}, torch::kFloat64), want,
                            {0.002, 0.0});
  EXPECT_FALSE(neg.pass);
  EXPECT_FALSE(compare_tensor("out.si_sdr", torch::tensor({3.0, 1e300}, torch::kFloat64), want, {0.002, 0.0}).pass);
  // A computed infinity where a finite value is expected fails too.
  EXPECT_FALSE(compare_tensor("out.si_sdr", want, torch::tensor({3.0, 90.0}, torch::kFloat64), {0.002, 0.0}).pass);
}

TEST_F(ParityCases, CollectsFoldersRecursivelySorted) {
  fs::create_directories(dir_ / "sub");
  write("b.safetensors", {{"in.x", kX}}, meta());
  write("sub/a.safetensors", {{"in.x", kX}}, meta());
  std::ofstream(dir_ / "notes.txt") << "ignored";
  auto files = sepmech::parity::collect_case_files({dir_.string()});
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], (dir_ / "b.safetensors").string());
  EXPECT_EQ(files[1], (dir_ / "sub" / "a.safetensors").string());
}

namespace {

// Runs the sepmech binary; returns (exit code, stdout).
std::pair<int, std::string> run_cli(const std::string& args) {
  std::string cmd = std::string(SEPMECH_CLI) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  auto pos = t.rfind('\n');
  return pos == std::string::npos ? t : t.substr(pos + 1);
}

}  // namespace

TEST_F(ParityCases, CliPrintsCountsAndExitsNonZeroOnFailure) {
  // The CLI is a separate process: the test adapter above is not in it, so these cases fail.
  write("one.safetensors", {{"in.x", kX}, {"out.y", kX}}, meta("no_such_mechanism"));
  write("two.safetensors", {{"in.x", kX}, {"out.y", kX}}, meta("sepmech_test_scale"));
  auto [code, out] = run_cli("parity " + dir_.string());
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(last_line(out), "0 passed, 2 failed") << out;
  EXPECT_NE(out.find("FAIL " + (dir_ / "one.safetensors").string()), std::string::npos) << out;
  EXPECT_NE(out.find("module 'no_such_mechanism' is not supported"), std::string::npos) << out;

  auto [jcode, jout] = run_cli("parity --json " + (dir_ / "one.safetensors").string());
  EXPECT_NE(jcode, 0);
  std::istringstream lines(jout);
  std::string first;
  std::getline(lines, first);
  auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["pass"], false);
  EXPECT_EQ(j["module"], "no_such_mechanism");
  EXPECT_EQ(last_line(jout), "0 passed, 1 failed");
}

TEST_F(ParityCases, CliWithNoCaseFilesFails) {
  auto [code, out] = run_cli("parity " + dir_.string());
  EXPECT_NE(code, 0);
  EXPECT_EQ(last_line(out), "0 passed, 1 failed") << out;
}

TEST_F(ParityCases, CliInfoListsCheckpointAndSafetensors) {
  std::string path = write("info.safetensors", {{"in.x", kX}, {"out.y", kX.to(torch::kFloat64)}}, meta());
  auto [code, out] = run_cli("info " + path);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("safetensors, 2 tensors"), std::string::npos) << out;
  EXPECT_NE(out.find("out.y"), std::string::npos) << out;
  EXPECT_NE(out.find("Double"), std::string::npos) << out;
  EXPECT_NE(out.find("module = sepmech_test_scale"), std::string::npos) << out;
  auto [c2, o2] = run_cli(std::string("info ") + SEPMECH_TEST_DATA + "/checkpoints/lightning.ckpt");
  EXPECT_EQ(c2, 0) << o2;
  EXPECT_NE(o2.find("PyTorch checkpoint (with a 'state_dict' entry), 24 tensors"), std::string::npos) << o2;
  EXPECT_NE(o2.find("state_dict.model.strided"), std::string::npos) << o2;
  EXPECT_NE(o2.find("[3, 4]"), std::string::npos) << o2;
  EXPECT_NE(o2.find("epoch = 3"), std::string::npos) << o2;
  auto [c3, o3] = run_cli(std::string("info ") + SEPMECH_TEST_DATA + "/checkpoints/legacy.pt");
  EXPECT_NE(c3, 0);
}

TEST_F(ParityCases, MalformedTolerancesFailTheCase) {
  for (const char* bad : {"abc", "1e-5x", "-1", "nan", "inf", ""}) {
    auto m = meta();
    m["atol"] = bad;
    auto rep = sepmech::parity::run_case(write("tol.safetensors", {{"in.x", kX}, {"out.y", kX * 2}}, m));
    EXPECT_FALSE(rep.pass) << "atol '" << bad << "'";
    EXPECT_NE(rep.error.find("metadata 'atol' must be a finite non-negative number"), std::string::npos) << rep.error;
  }
  auto m = meta();
  m["grad_rtol"] = "0.1 ";
  auto rep = sepmech::parity::run_case(write("tol2.safetensors", {{"in.x", kX}, {"out.y", kX * 2}}, m));
  EXPECT_FALSE(rep.pass);
  EXPECT_NE(rep.error.find("'grad_rtol'"), std::string::npos) << rep.error;
}

// The shared-parameters extension (docs/spec/deepfilternet3.md §10): `params_file` names a file
// of param.* tensors next to the case, `param_prefix` selects and strips a sub-module's keys,
// F16 parameters are widened to float32; the parameters file itself is reported, not run.
TEST_F(ParityCases, SharedParamsFileIsMergedWithPrefixAndWidened) {
  const torch::Tensor w16 = torch::tensor({0.1f, -2.5f, 3.0f}).to(torch::kFloat16);
  const torch::Tensor w32 = torch::tensor({7.0f, 8.0f});
  const std::string params = write("weights.safetensors", {{"param.enc.w", w16}, {"param.dec.w", w32}},
                                   {{"module", "test_weights"}});
  auto m = meta();
  m["params_file"] = "weights.safetensors";
  m["param_prefix"] = "enc.";
  auto c = sepmech::parity::load_case(write("sub.safetensors", {{"in.x", kX}, {"out.y", kX * 2}}, m));
  ASSERT_TRUE(c.has("param.w"));
  EXPECT_FALSE(c.has("param.enc.w"));
  EXPECT_FALSE(c.has("param.dec.w"));
  EXPECT_EQ(c.at("param.w").scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(c.at("param.w"), w16.to(torch::kFloat32)));
  EXPECT_FALSE(c.is_params_file());

  // No prefix: every parameter under its full name.
  m["param_prefix"] = "";
  auto full = sepmech::parity::load_case(write("full.safetensors", {{"in.x", kX}, {"out.y", kX * 2}}, m));
  EXPECT_TRUE(full.has("param.enc.w") && full.has("param.dec.w"));
  // An empty params_file means none.
  m["params_file"] = "";
  EXPECT_FALSE(sepmech::parity::load_case(write("none.safetensors", {{"in.x", kX}, {"out.y", kX}}, m)).has("param.enc.w"));

  // The parameters file on its own: a PARAMS line, neither pass nor fail of a case.
  auto rep = sepmech::parity::run_case(params);
  EXPECT_TRUE(rep.pass);
  EXPECT_TRUE(rep.params_only);
  EXPECT_EQ(sepmech::parity::to_line(rep).rfind("PARAMS ", 0), 0u) << sepmech::parity::to_line(rep);
  // A case still runs normally next to it.
  m["params_file"] = "weights.safetensors";
  m["param_prefix"] = "dec.";
  auto ok = sepmech::parity::run_case(write("run.safetensors", {{"in.x", kX}, {"out.y", kX * 2}}, m));
  EXPECT_TRUE(ok.pass) << sepmech::parity::to_line(ok);
  EXPECT_FALSE(ok.params_only);
}

TEST_F(ParityCases, BrokenSharedParamsReferencesFail) {
  write("weights.safetensors", {{"param.enc.w", kX}}, {{"module", "test_weights"}});
  write("mixed.safetensors", {{"param.enc.w", kX}, {"out.y", kX}}, {{"module", "test_weights"}});
  auto expect_error = [&](const std::string& name, sepmech::io::TensorMap t, const std::string& file,
                          const std::string& prefix, const std::string& needle) {
    auto m = meta();
    m["params_file"] = file;
    m["param_prefix"] = prefix;
    auto rep = sepmech::parity::run_case(write(name, t, m));
    EXPECT_FALSE(rep.pass) << name;
    EXPECT_NE(rep.error.find(needle), std::string::npos) << name << ": " << rep.error;
  };
  expect_error("a.safetensors", {{"in.x", kX}, {"out.y", kX}}, "missing.safetensors", "", "cannot load case");
  expect_error("b.safetensors", {{"in.x", kX}, {"out.y", kX}}, "../weights.safetensors", "", "next to the case");
  expect_error("c.safetensors", {{"in.x", kX}, {"out.y", kX}}, "weights.safetensors", "dec.", "no tensor under");
  expect_error("d.safetensors", {{"in.x", kX}, {"out.y", kX}, {"param.enc.w", kX}}, "weights.safetensors", "",
               "both in the case");
  expect_error("e.safetensors", {{"in.x", kX}, {"out.y", kX}}, "mixed.safetensors", "", "param.* only");
}
