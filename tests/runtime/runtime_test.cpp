// Process-wide runtime facts: the BLAS LibTorch runs on and the intra-op thread count.
#include <gtest/gtest.h>

#include "sepmech/runtime.h"

TEST(Runtime, BlasIsNotTheReferenceOne) {
  // scripts/setup.sh installs libopenblas0-pthread, so LibTorch's sgemm_ must come from an
  // optimised BLAS here; on the reference (netlib) BLAS matrix work is ~40x slower.
  sepmech::BlasInfo b = sepmech::blas_info();
  EXPECT_FALSE(b.library.empty()) << "sgemm_ should be resolvable in a process linked to LibTorch";
  EXPECT_NE(b.vendor, "unknown") << b.library;
  EXPECT_FALSE(b.is_reference()) << "LibTorch runs on the reference BLAS " << b.library
                                 << ": apt-get install libopenblas0-pthread";
  EXPECT_EQ(b.vendor, "openblas") << b.library << " (setup.sh installs OpenBLAS)";
  EXPECT_EQ(sepmech::blas_warning(), "");
}

TEST(Runtime, SetNumThreads) {
  // OpenBLAS (what setup installs) has its own pool; it must follow, or "1 thread" benchmarks
  // of matrix work silently run on every core.
  ASSERT_EQ(sepmech::blas_info().vendor, "openblas");
  sepmech::set_num_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  EXPECT_EQ(sepmech::blas_num_threads(), 1);
  sepmech::set_num_threads(0);
  EXPECT_EQ(torch::get_num_threads(), sepmech::hardware_threads());
  EXPECT_EQ(sepmech::blas_num_threads(), sepmech::hardware_threads());
  EXPECT_THROW(sepmech::set_num_threads(-1), c10::Error);
  sepmech::set_num_threads(1);
}

TEST(Runtime, ReferenceBlasIsRecognisedAndWarnedAbout) {
  // Debian's alternatives for libblas.so.3, as realpath() resolves them.
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"), "reference");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/aarch64-linux-gnu/blas/libblas.so.3"), "reference");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"), "openblas");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3"), "blis");
  EXPECT_EQ(sepmech::blas_vendor_of("/opt/intel/mkl/lib/libmkl_rt.so"), "mkl");
  EXPECT_EQ(sepmech::blas_vendor_of("/usr/lib/libsomething.so"), "unknown");
  sepmech::BlasInfo ref{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", "reference"};
  std::string w = sepmech::blas_warning(ref);
  EXPECT_NE(w.find("reference BLAS"), std::string::npos) << w;
  EXPECT_NE(w.find(ref.library), std::string::npos) << w;
  EXPECT_NE(w.find("apt-get install -y libopenblas0-pthread"), std::string::npos) << w;
  EXPECT_EQ(sepmech::blas_warning(sepmech::BlasInfo{"/x/openblas-pthread/libblas.so.3", "openblas"}), "");
}
