/* bcryptprimitives.dll for Wine older than 8.13, which lacks it.
 *
 * Go 1.22 and newer load bcryptprimitives.dll at start-up for ProcessPrng,
 * its source of random bytes, and a Windows program dies before main without
 * it. This shim answers ProcessPrng with advapi32's SystemFunction036
 * (RtlGenRandom), which Wine 8.0 has. .ci/wine-setup builds it with mingw-w64
 * and copies it into the test prefix's system32, and only there: it is test
 * equipment, never part of a package.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	/* SystemFunction036 takes a ULONG: feed it in pieces that fit. */
	while (length > 0) {
		ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}
