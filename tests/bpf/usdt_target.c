/* A user-space program for the usdt tests: fires the USDT probe ebpft:tick (arguments: the
 * iteration, an int, and its square, a long) as often as argv[1] says. The probe has a
 * semaphore, so the program only fires it while a probe is attached. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdlib.h>
#include <sys/sdt.h>

unsigned short ebpft_tick_semaphore __attribute__((section(".probes")));

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0;

	for (int i = 0; i < n; i++) {
		long square = (long)i * i;

		if (ebpft_tick_semaphore)
			STAP_PROBE2(ebpft, tick, i, square);
		sum += square;
	}
	return sum == -1;
}
