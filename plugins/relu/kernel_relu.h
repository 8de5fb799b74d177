// Host entry points of the BANG C ReLU kernel (kernel_relu.mlu), as declared by the lab.
//
// The kernel splits `count` elements across the `dim.x * dim.y * dim.z` tasks of the launch
// (taskId / taskDim): launched UNION1 with dim {4, clusters, 1} it uses every core of the clusters,
// launched BLOCK with dim {1, 1, 1} it runs on one core (UNIONn dims: relu_launch.h). The call is
// asynchronous on `queue`: clear with cnrtGetLastError() before, check cnrtPeekAtLastError() after
// (SWIN_KERNEL_CHECK), and sync the queue for completion.
#ifndef SWIN_PLUGINS_RELU_KERNEL_RELU_H_
#define SWIN_PLUGINS_RELU_KERNEL_RELU_H_

#include <cstdint>

#include "cnrt.h"

void ReluEnqueue(cnrtDim3_t dim, cnrtFunctionType_t ktype, cnrtQueue_t queue, float *input_addr,
                 float *output_addr, uint32_t count);
// fp16 data, passed as raw 16-bit words on the host.
void ReluEnqueue(cnrtDim3_t dim, cnrtFunctionType_t ktype, cnrtQueue_t queue, uint16_t *input_addr,
                 uint16_t *output_addr, uint32_t count);

#endif  // SWIN_PLUGINS_RELU_KERNEL_RELU_H_
