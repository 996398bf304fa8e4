# vision/package/install.cmake: what `cmake --install` puts where, the CMake package other
# projects find, and CPack's Debian package.
include(CMakePackageConfigHelpers)

set(ATTNKIT_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/attnkit)
set(ATTNKIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/attnkit)

# The program, its default weights and the samples: what `attn` users need.
install(TARGETS attn RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/weights/ DESTINATION ${ATTNKIT_INSTALL_DATADIR}/weights
        COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/samples/ DESTINATION ${ATTNKIT_INSTALL_DATADIR}/samples
        COMPONENT runtime PATTERN "cpp/build" EXCLUDE)

# The libraries, their headers and the CMake package: what C++ developers need.
get_property(ATTNKIT_LIBRARIES GLOBAL PROPERTY ATTNKIT_LIBRARIES)
install(TARGETS ${ATTNKIT_LIBRARIES} EXPORT attnkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${ATTNKIT_INSTALL_INCLUDEDIR})
foreach(folder attention vision)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${folder} DESTINATION ${ATTNKIT_INSTALL_INCLUDEDIR}
          COMPONENT dev FILES_MATCHING PATTERN "*.h"
          PATTERN "package" EXCLUDE PATTERN "api_helpers.h" EXCLUDE)
endforeach()
install(EXPORT attnkitTargets NAMESPACE attnkit:: DESTINATION ${ATTNKIT_INSTALL_CMAKEDIR}
        COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/attnkitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/attnkitConfig.cmake
  INSTALL_DESTINATION ${ATTNKIT_INSTALL_CMAKEDIR}
  PATH_VARS ATTNKIT_INSTALL_DATADIR)
# 0.x: a minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/attnkitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/attnkitConfig.cmake
              ${PROJECT_BINARY_DIR}/attnkitConfigVersion.cmake
        DESTINATION ${ATTNKIT_INSTALL_CMAKEDIR} COMPONENT dev)

# CPack: `cpack -G DEB` makes attnkit_<version>_<arch>.deb (the program, weights and samples)
# and attnkit-dev_... (the libraries, headers and CMake package) for /usr, their dependencies
# read from the binaries by dpkg-shlibdeps. `attn` finds its weights beside itself wherever it
# is; programs linking attnkit::api look in the configured prefix's share/attnkit too, so
# `./setup.sh package` configures with -DCMAKE_INSTALL_PREFIX=/usr.
set(CPACK_PACKAGE_NAME attnkit)
set(CPACK_PACKAGE_VENDOR "attnkit")
set(CPACK_PACKAGE_CONTACT "attnkit developers <attnkit@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Attention for computer vision: ViT classification, captioning and attention overlays")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME attnkit)
# Without OpenBLAS LibTorch runs on the reference BLAS, about 40x slower.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "libopenblas0-openmp")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME attnkit-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "attnkit (= ${PROJECT_VERSION}), libtorch-dev, libopencv-dev, nlohmann-json3-dev, zlib1g-dev, libgloo-dev, libdnnl-dev, cmake")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "the attn program (classify, caption, overlay, train, import, eval) with its default models")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "static libraries, headers and the CMake package (find_package(attnkit)) of attnkit")
include(CPack)
