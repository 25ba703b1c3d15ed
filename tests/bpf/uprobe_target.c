/* A user-space program for the uprobe tests: calls ebpft_probe_me() and ebpft_probe_me_too() as
 * often as argv[1] says. */
#include <stdlib.h>

__attribute__((noinline)) int ebpft_probe_me(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline)) int ebpft_probe_me_too(int x)
{
	__asm__ volatile("" ::: "memory");
	return x - 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, sum = 0;

	for (int i = 0; i < n; i++)
		sum += ebpft_probe_me(i) + ebpft_probe_me_too(i);
	return sum == -1;
}
