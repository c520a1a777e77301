// sepmech info FILE: the tensors (name, dtype, shape) and metadata of a safetensors file or a
// PyTorch (torch.save zip) checkpoint, told apart by their first bytes.
#include <fstream>
#include <iomanip>
#include <iostream>

#include "command.h"
#include "sepmech/io/checkpoint.h"
#include "sepmech/io/safetensors.h"

namespace {

void print_listing(std::ostream& os, const std::string& kind, const std::string& path,
                   const sepmech::io::TensorMap& tensors, const sepmech::io::Metadata& metadata) {
  std::size_t width = 4;
  for (const auto& [name, t] : tensors) width = std::max(width, name.size());
  os << path << ": " << kind << ", " << tensors.size() << " tensor" << (tensors.size() == 1 ? "" : "s") << "\n";
  for (const auto& [name, t] : tensors)
    os << "  " << std::left << std::setw(static_cast<int>(width)) << name << "  " << std::setw(14)
       << c10::toString(t.scalar_type()) << " " << c10::str(t.sizes()) << "\n";
  if (metadata.empty()) return;
  os << "metadata (" << metadata.size() << "):\n";
  for (const auto& [key, value] : metadata) {
    std::string v = value.size() > 200 ? value.substr(0, 200) + "... (" + std::to_string(value.size()) + " chars)" : value;
    os << "  " << key << " = " << v << "\n";
  }
}

sepmech::cli::RegisterCommand reg(30, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "list the tensors and metadata of a safetensors file or PyTorch checkpoint");
  auto path = std::make_shared<std::string>();
  cmd->add_option("file", *path, "a .safetensors file or a torch.save checkpoint (.pt, .pth, .ckpt)")->required();
  cmd->callback([path, &exit_code] {
    // One read of a regular file (a FIFO or device is refused before anything blocks on it),
    // then sniffed and parsed in memory.
    const auto bytes = sepmech::io::read_file_bytes(*path);
    if (sepmech::io::looks_like_torch_checkpoint(bytes.data(), bytes.size())) {
      auto ckpt = sepmech::io::parse_checkpoint(bytes.data(), bytes.size(), *path);
      std::string kind = "PyTorch checkpoint";
      if (ckpt.top_level_keys.count("state_dict")) kind += " (with a 'state_dict' entry)";
      print_listing(std::cout, kind, *path, ckpt.tensors, ckpt.metadata);
    } else {
      auto file = sepmech::io::parse_safetensors(bytes.data(), bytes.size(), *path);
      print_listing(std::cout, "safetensors", *path, file.tensors, file.metadata);
    }
    exit_code = 0;
  });
});

}  // namespace
