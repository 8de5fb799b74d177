// Launch configuration of the BANG ReLU kernel (kernel_relu.mlu): the rule a UNIONn launch must
// follow and the device query it needs. Header-only so that the host-emulation test
// (plugins/host_shim/relu_tiling_test.cc) checks the same arithmetic the plugin and self-test use.
//
// A UNIONn task occupies n whole clusters, so its Dim.x must be a multiple of n * (cores per
// cluster). Public launch policies query the cluster geometry instead of hard-coding it, e.g.
// `k_dim.x = getDeviceAttr(cnrtAttrMcorePerCluster); k_dim.y = getDeviceAttr(cnrtAttrClusterCount)`
// with CNRT_FUNC_TYPE_UNION1 (open-mmlab/mmcv mmcv/ops/csrc/pytorch/mlu/*_mlu.cpp policyFunc,
// torch_mlu's getDeviceAttr), and `cnrtDeviceGetAttribute(&core_per_cluster,
// cnrtAttrMcorePerCluster, 0)` in DeepLink's DIOPI camb kernels. MLU370: 4 cores per cluster.
#ifndef SWIN_PLUGINS_RELU_RELU_LAUNCH_H_
#define SWIN_PLUGINS_RELU_RELU_LAUNCH_H_

#include "cnrt.h"

namespace swin_plugin {

// Clusters taken by one task of `type`: 0 for BLOCK (one core), n for UNIONn.
inline unsigned UnionClusters(cnrtFunctionType_t type) {
  switch (type) {
    case cnrtFuncTypeUnion1:
      return 1;
    case cnrtFuncTypeUnion2:
      return 2;
    case cnrtFuncTypeUnion4:
      return 4;
    case cnrtFuncTypeUnion8:
      return 8;
    case cnrtFuncTypeUnion16:
      return 16;
    default:
      return 0;
  }
}

// `dim` with x rounded up to a multiple of n * cores_per_cluster for UNIONn; BLOCK launches (and an
// unknown cores_per_cluster of 0) are returned unchanged. The kernel splits its work over
// taskDim, so a larger x only adds tasks; it never changes the result.
inline cnrtDim3_t UnionAlignedDim(cnrtDim3_t dim, cnrtFunctionType_t type, unsigned cores_per_cluster) {
  const unsigned clusters = UnionClusters(type);
  if (clusters == 0 || cores_per_cluster == 0) return dim;
  const unsigned unit = clusters * cores_per_cluster;
  dim.x = (dim.x + unit - 1) / unit * unit;
  return dim;
}

// Cores per cluster and cluster count of the calling thread's current device.
inline cnrtRet_t QueryClusterGeometry(unsigned *cores_per_cluster, unsigned *cluster_count) {
  int device = 0;
  cnrtRet_t ret = cnrtGetDevice(&device);
  int cores = 0;
  int clusters = 0;
  if (ret == cnrtSuccess) ret = cnrtDeviceGetAttribute(&cores, cnrtAttrMcorePerCluster, device);
  if (ret == cnrtSuccess) ret = cnrtDeviceGetAttribute(&clusters, cnrtAttrClusterCount, device);
  if (ret == cnrtSuccess && (cores <= 0 || clusters <= 0)) ret = cnrtErrorInvalidValue;
  if (ret == cnrtSuccess) {
    *cores_per_cluster = static_cast<unsigned>(cores);
    *cluster_count = static_cast<unsigned>(clusters);
  }
  return ret;
}

}  // namespace swin_plugin

#endif  // SWIN_PLUGINS_RELU_RELU_LAUNCH_H_
