/* Link-time stand-in for the system's libgcc_s.so.1: it only names the unwinder's entry points
 * (with their real symbol versions, from libgcc_s.map) so the linker records a dependency on
 * libgcc_s.so.1. At run time the real library, present on every glibc system, provides them.
 * See cross_env in scripts/common.sh for why the unwinder must be the system's. */
#define STUB(name) void name(void) {}
STUB(_Unwind_DeleteException)
STUB(_Unwind_Find_FDE)
STUB(_Unwind_ForcedUnwind)
STUB(_Unwind_GetDataRelBase)
STUB(_Unwind_GetGR)
STUB(_Unwind_GetIP)
STUB(_Unwind_GetLanguageSpecificData)
STUB(_Unwind_GetRegionStart)
STUB(_Unwind_GetTextRelBase)
STUB(_Unwind_RaiseException)
STUB(_Unwind_Resume)
STUB(_Unwind_SetGR)
STUB(_Unwind_SetIP)
STUB(_Unwind_Backtrace)
STUB(_Unwind_FindEnclosingFunction)
STUB(_Unwind_GetCFA)
STUB(_Unwind_Resume_or_Rethrow)
STUB(_Unwind_GetIPInfo)
/* wasmtime registers the unwind tables of the code it compiles with the same unwinder. These
 * carry no version here: libgcc_s versions them GCC_3.0 on x86_64 and GLIBC_2.0 on aarch64, and
 * an unversioned reference binds to either. */
STUB(__register_frame)
STUB(__deregister_frame)
STUB(__register_frame_info)
STUB(__deregister_frame_info)
STUB(__register_frame_info_bases)
STUB(__deregister_frame_info_bases)
STUB(__register_frame_table)
STUB(__register_frame_info_table)
STUB(__register_frame_info_table_bases)
