// tierbed built-in chip orchestration shared by the elementwise binary kernels (add, mul).
//
// The chip task's three tensors (a, b, out) become one AIV task of func_id 0, the chip callable's
// only child. The operands are checked here, where an error can still be reported to the caller
// (a kernel cannot fail a task); a violation is a fatal INVALID_ARGS of the run.
#include <stdint.h>

#include "elementwise.h"           // NOLINT(build/include_subdir)
#include "pto_orchestration_api.h"  // NOLINT(build/include_subdir)
#include "pto_runtime_status.h"     // NOLINT(build/include_subdir)

extern "C" {

__attribute__((visibility("default"))) PTO2OrchestrationConfig
tierbed_binary_orchestration_config(const ChipTaskArgs &args) {
    (void)args;
    // A tensor count below this fails the run before the entry runs; a surplus (the hw adapter
    // appends a dispatch-token scalar to every task) is allowed.
    return PTO2OrchestrationConfig{.expected_arg_count = 3};
}

__attribute__((visibility("default"))) void tierbed_binary_orchestration(const ChipTaskArgs &args) {
    if (args.tensor_count() < 3) {
        rt_report_fatal(PTO2_ERROR_INVALID_ARGS, "tierbed elementwise kernel: needs 3 tensors (a, b, out), got %d",
                        static_cast<int>(args.tensor_count()));
        return;
    }
    const ChipTensor &a = args.tensor(0).ref();
    const ChipTensor &b = args.tensor(1).ref();
    const ChipTensor &out = args.tensor(2).ref();
    if (!tierbed::dtype_supported(out.dtype) || a.dtype != out.dtype || b.dtype != out.dtype) {
        rt_report_fatal(PTO2_ERROR_INVALID_ARGS,
                        "tierbed elementwise kernel: dtypes (%d, %d, %d) must be equal and one of float32, int32, int8",
                        static_cast<int>(a.dtype), static_cast<int>(b.dtype), static_cast<int>(out.dtype));
        return;
    }
    if (a.numel() != out.numel() || b.numel() != out.numel()) {
        rt_report_fatal(PTO2_ERROR_INVALID_ARGS,
                        "tierbed elementwise kernel: element counts (%llu, %llu, %llu) must be equal",
                        static_cast<unsigned long long>(a.numel()), static_cast<unsigned long long>(b.numel()),
                        static_cast<unsigned long long>(out.numel()));
        return;
    }
    CoreTaskArgs task;
    task.add_input(a);
    task.add_input(b);
    task.add_output(out);  // an existing tensor: written in place (OUTPUT_EXISTING)
    rt_submit_aiv_task(0, task);
}

}  // extern "C"
