// A program outside the sepmech tree: it only sees the installed headers and the
// CMake package, as a user's project would.
#include <sepmech/sepmech.h>

#include <cstdio>
#include <map>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::map<std::string, torch::Tensor> tensors{{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})}};
  sepmech::io::save_safetensors(argv[1], tensors, {{"who", "consumer"}});
  auto back = sepmech::io::load_safetensors(argv[1]);
  bool ok = back.tensors.at("w").equal(tensors["w"]) && back.metadata.at("who") == "consumer";
  std::printf("sepmech %s consumer: %s\n", sepmech::version().c_str(), ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
