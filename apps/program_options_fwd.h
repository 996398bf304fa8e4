// apps/program_options_fwd.h: Boost.Program_options' classes declared for the headers that take
// them by reference, so they need not include the library's heavy header.
#pragma once

namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options
