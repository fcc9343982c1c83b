#include "src/log.hpp"
