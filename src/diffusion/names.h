#pragma once
// The name tables behind the diffusion family's to_string / *_from_string pairs: one canonical
// name per enum value (what to_string returns and what the reference spells), optionally a few
// older spellings that are still accepted when parsing.
#include <cstddef>
#include <initializer_list>
#include <c10/util/Exception.h>
#include <string>

namespace sepmech::diffusion::names {

template <typename E>
struct Entry {
  E value;
  const char* name;
};

/// The canonical name of `v`, or "<invalid Type n>" for a value outside the table.
template <typename E, std::size_t N>
std::string name_of(const Entry<E> (&table)[N], E v, const char* type) {
  for (const Entry<E>& e : table)
    if (e.value == v) return e.name;
  return std::string("<invalid ") + type + " " + std::to_string(static_cast<int>(v)) + ">";
}

/// "'a', 'b', 'c'" (the canonical names of `table`).
template <typename E, std::size_t N>
std::string list(const Entry<E> (&table)[N]) {
  std::string out;
  for (const Entry<E>& e : table) out += std::string(out.empty() ? "" : ", ") + "'" + e.name + "'";
  return out;
}

/// Parses `name` against the canonical names of `table`, then the older spellings in `aliases`
/// that are still accepted; throws c10::Error listing the canonical names otherwise (the library's
/// convention for every *_from_string, docs/design.md).
template <typename E, std::size_t N>
E parse(const Entry<E> (&table)[N], const std::string& name, const char* fn, const char* what,
        std::initializer_list<Entry<E>> aliases = {}) {
  for (const Entry<E>& e : table)
    if (name == e.name) return e.value;
  for (const Entry<E>& e : aliases)
    if (name == e.name) return e.value;
  TORCH_CHECK(false, "sepmech::diffusion::", fn, ": ", what, " must be one of ", list(table), ", got '", name, "'");
}

}  // namespace sepmech::diffusion::names
