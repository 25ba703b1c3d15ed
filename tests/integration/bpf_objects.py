"""Test BPF objects compiled from source with CO-RE against this kernel's BTF (tests/bpf/)."""
import os
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = os.path.join(REPO, "tests", "bpf")
# What the tests compile goes under EBPF_TESTS_BUILD_DIR (default build/): test runs at once (make
# test's two sequences) each have their own, so none rewrites an object another one is loading.
BUILD_ROOT = os.environ.get("EBPF_TESTS_BUILD_DIR") or os.path.join(REPO, "build")
BUILD = os.path.join(BUILD_ROOT, "test-bpf")

# variant name -> (source file, extra clang flags)
VARIANTS = {
    "base": ("test_object.bpf.c", []),
    "changed": ("test_object.bpf.c", ["-DVARIANT_CHANGED"]),
    "rodata": ("test_object.bpf.c", ["-DVARIANT_RODATA"]),
    "reject": ("test_object.bpf.c", ["-DVARIANT_REJECT"]),
    "conflict": ("test_object.bpf.c", ["-DVARIANT_CONFLICT"]),
    "dropped": ("test_object.bpf.c", ["-DVARIANT_DROPPED"]),
    "no_programs": ("no_programs.bpf.c", []),
    "attach": ("attach_object.bpf.c", []),
    "attach_v2": ("attach_object.bpf.c", ["-DVARIANT_V2"]),
    "attach_v2_maps": ("attach_object.bpf.c", ["-DVARIANT_V2", "-DVARIANT_MAPS"]),
    "tp_btf": ("btf_hooks.bpf.c", []),
    "fentry": ("btf_hooks.bpf.c", ["-DVARIANT_FENTRY"]),
    "kconfig": ("load_cases.bpf.c", ["-mcpu=v3"]),
    "extern": ("load_cases.bpf.c", ["-mcpu=v3", "-DVARIANT_EXTERN"]),
    "named": ("named_sections.bpf.c", []),
    "named_bad": ("named_sections.bpf.c", ["-DVARIANT_BAD"]),
    "usdt": ("catalog/python_gc.bpf.c", []),
    "multi": ("multi_probes.bpf.c", []),
    "usdt_v3": ("catalog/python_gc.bpf.c", ["-mcpu=v3"]),  # other instructions, the same maps
    "usdt_args": ("usdt_args.bpf.c", []),
}


def _arch():
    machine = os.uname().machine
    return {"x86_64": "x86", "aarch64": "arm64"}.get(machine, machine)


def compile_bpf(source, output, flags=(), include_dir=BUILD):
    subprocess.run(
        ["clang", "-g", "-O2", "-Wall", "-Werror", "-target", "bpf", "-D__TARGET_ARCH_%s" % _arch(),
         "-I", include_dir, "-idirafter", "/usr/include/%s-linux-gnu" % os.uname().machine] + list(flags)
        + ["-c", source, "-o", output],
        check=True)
    subprocess.run(["llvm-strip", "-g", output], check=True)
    return output


def build_test_objects():
    """{variant: path} of the test objects, plus "rebuilt": the base object compiled from a copy
    of the source elsewhere (different bytes, same instructions), and two files that are not BPF
    objects."""
    os.makedirs(BUILD, exist_ok=True)
    vmlinux_h = os.path.join(BUILD, "vmlinux.h")
    if not os.path.exists(vmlinux_h):
        with open(vmlinux_h + ".tmp", "w") as out:
            subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                           stdout=out, check=True)
        os.rename(vmlinux_h + ".tmp", vmlinux_h)
    objects = {}
    for variant, (source, flags) in VARIANTS.items():
        objects[variant] = compile_bpf(os.path.join(SOURCES, source),
                                       os.path.join(BUILD, "%s.bpf.o" % variant), flags)
    elsewhere = os.path.join(BUILD, "elsewhere")
    os.makedirs(elsewhere, exist_ok=True)
    shutil.copy(os.path.join(SOURCES, "test_object.bpf.c"), os.path.join(elsewhere, "copy_of_test_object.bpf.c"))
    objects["rebuilt"] = compile_bpf(os.path.join(elsewhere, "copy_of_test_object.bpf.c"),
                                     os.path.join(BUILD, "rebuilt.bpf.o"))
    not_bpf = os.path.join(BUILD, "not_bpf.o")
    with open(os.path.join(BUILD, "not_bpf.c"), "w") as f:
        f.write("int answer(void) { return 42; }\n")
    subprocess.run(["cc", "-c", os.path.join(BUILD, "not_bpf.c"), "-o", not_bpf], check=True)
    objects["not_bpf"] = not_bpf
    text = os.path.join(BUILD, "not_elf.bpf.o")
    with open(text, "w") as f:
        f.write("this is not an object file\n")
    objects["not_elf"] = text
    return objects


def build_program(source, name):
    """A user-space test program (tests/bpf/<source>) compiled into <build>/test-bpf/<name>."""
    os.makedirs(BUILD, exist_ok=True)
    out = os.path.join(BUILD, name)
    subprocess.run(["cc", "-O1", "-o", out, os.path.join(SOURCES, source)], check=True)
    return out


def build_product_objects():
    """{name: path} of the collection's objects, built by bpf/Makefile into <build>/bpf-programs."""
    build = os.path.join(BUILD_ROOT, "bpf-programs")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "bpf"), "O=" + build], check=True)
    return dict((name[:-len(".bpf.o")], os.path.join(build, name)) for name in os.listdir(build) if name.endswith(".bpf.o"))
